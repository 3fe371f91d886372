#!/usr/bin/env python3
"""Drives a headless Chromium through the DevTools protocol over a pipe (Python's standard
library only: no websocket client, no npm).

    drive.py STEPS.json

STEPS is a JSON list, done in order:
  {"open": URL}                       load a page (the first opens the browser's tab)
  {"wait": JS, "timeout": SECONDS}    until the expression is truthy (default 120 s)
  {"eval": JS}                        print its value as one JSON line on stdout
  {"screenshot": FILE}                the page as PNG
  {"files": SELECTOR, "paths": [..]}  choose files in a file input, as a user would

Expressions may return promises. A step that fails or times out exits 1, saying which step and
what the page showed. CHROMIUM names the browser (default `chromium`).
"""

import base64
import json
import os
import subprocess
import sys
import time

WIDTH, HEIGHT = 1280, 800


class Browser:
    def __init__(self):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Chromium reads commands from fd 3 and writes answers to fd 4 (copied first, so that
        # neither end is closed by the other's move).
        def fds():
            into, out = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(into, 3)
            os.dup2(out, 4)

        self.process = subprocess.Popen(
            [
                os.environ.get("CHROMIUM", "chromium"),
                "--headless",
                "--remote-debugging-pipe",
                # CI runs as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            preexec_fn=fds,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.out = os.fdopen(to_chrome_w, "wb")
        self.into = os.fdopen(from_chrome_r, "rb")
        self.next_id = 0
        self.session = None

    def call(self, method, session=True, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        self.out.write(json.dumps(message).encode() + b"\0")
        self.out.flush()
        while True:
            answer = json.loads(self.read())
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def read(self):
        chunks = []
        while True:
            byte = self.into.read(1)
            if not byte:
                raise RuntimeError("the browser closed its pipe")
            if byte == b"\0":
                return b"".join(chunks)
            chunks.append(byte)

    def open(self, url):
        if self.session is None:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call(
                "Target.attachToTarget", targetId=target, flatten=True
            )["sessionId"]
            self.call("Page.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
        self.call("Page.navigate", url=url)

    def evaluate(self, expression):
        r = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"].get("exception", {}).get("description", r))
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run(browser, step):
    if "open" in step:
        browser.open(step["open"])
    elif "wait" in step:
        deadline = time.monotonic() + step.get("timeout", 120)
        while True:
            try:
                if browser.evaluate(f"(async () => Boolean(await ({step['wait']})))()"):
                    return
            except RuntimeError:
                # The page may be between two loads.
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("timed out")
            time.sleep(0.25)
    elif "eval" in step:
        print(json.dumps(browser.evaluate(step["eval"])), flush=True)
    elif "screenshot" in step:
        png = browser.call("Page.captureScreenshot", format="png")["data"]
        with open(step["screenshot"], "wb") as f:
            f.write(base64.b64decode(png))
    elif "files" in step:
        root = browser.call("DOM.getDocument")["root"]["nodeId"]
        node = browser.call("DOM.querySelector", nodeId=root, selector=step["files"])["nodeId"]
        if not node:
            raise RuntimeError("no such element")
        paths = [os.path.abspath(p) for p in step["paths"]]
        browser.call("DOM.setFileInputFiles", nodeId=node, files=paths)
    else:
        raise RuntimeError("not a step")


def main():
    with open(sys.argv[1]) as f:
        steps = json.load(f)
    browser = Browser()
    try:
        for number, step in enumerate(steps, 1):
            try:
                run(browser, step)
            except Exception as e:
                try:
                    shown = browser.evaluate("document.body ? document.body.innerText : ''")
                except Exception:
                    shown = "(nothing)"
                sys.exit(f"step {number} {json.dumps(step)}: {e}\nthe page showed:\n{shown}")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
