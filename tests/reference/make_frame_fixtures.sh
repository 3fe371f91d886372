#!/bin/sh
# Reference frames for the camera converters in `src/source/convert.rs` (YUYV and MJPEG -> RGB).
#
# Made with Debian 12's ffmpeg 5.1 (`apt-get install -y ffmpeg`) and python3, from the repository
# root: `sh tests/reference/make_frame_fixtures.sh`. Writes into tests/fixtures/frames/:
#   testsrc2_64x48.yuyv          one 64x48 frame of ffmpeg's testsrc2 pattern as raw yuyv422
#   testsrc2_64x48_yuyv.rgb      ffmpeg's rgb24 conversion of it (swscale defaults: BT.601, limited range)
#   random_32x16.yuyv            32x16 pseudo-random yuyv422 bytes (numpy seed 1: every Y, U and V value,
#                                out-of-range ones included, so clipping is covered)
#   random_32x16_yuyv.rgb        ffmpeg's rgb24 conversion of it
#   testsrc2_64x48.jpg           the same frame as a baseline 4:2:2 JPEG (what webcams send as MJPEG),
#                                encoded with the standard Huffman tables (`-huffman default`)
#   testsrc2_64x48_nodht.jpg     the same bytes with every DHT segment removed, as many webcams send
#                                MJPEG frames (the decoder must supply the standard tables)
#   testsrc2_64x48_jpg.rgb       ffmpeg's rgb24 decode of the JPEG, chroma interpolated bilinearly
#                                (`full_chroma_int`, as libjpeg's and zune-jpeg's fancy upsampling do;
#                                ffmpeg's default repeats chroma samples and differs by up to 113 at
#                                the pattern's colour edges)
set -eu
out=tests/fixtures/frames
mkdir -p "$out"
ff="ffmpeg -hide_banner -loglevel error -y"

$ff -f lavfi -i testsrc2=size=64x48:rate=1 -frames:v 1 -pix_fmt yuyv422 -f rawvideo "$out/testsrc2_64x48.yuyv"
$ff -f rawvideo -pix_fmt yuyv422 -video_size 64x48 -i "$out/testsrc2_64x48.yuyv" \
    -pix_fmt rgb24 -f rawvideo "$out/testsrc2_64x48_yuyv.rgb"

python3 -c "import numpy as np; np.random.default_rng(1).integers(0, 256, size=32 * 16 * 2, dtype=np.uint8).tofile('$out/random_32x16.yuyv')"
$ff -f rawvideo -pix_fmt yuyv422 -video_size 32x16 -i "$out/random_32x16.yuyv" \
    -pix_fmt rgb24 -f rawvideo "$out/random_32x16_yuyv.rgb"

$ff -f lavfi -i testsrc2=size=64x48:rate=1 -frames:v 1 -pix_fmt yuvj422p -c:v mjpeg \
    -huffman default -q:v 3 "$out/testsrc2_64x48.jpg"
$ff -i "$out/testsrc2_64x48.jpg" -sws_flags bilinear+full_chroma_int+full_chroma_inp+accurate_rnd \
    -pix_fmt rgb24 -f rawvideo "$out/testsrc2_64x48_jpg.rgb"

python3 - "$out/testsrc2_64x48.jpg" "$out/testsrc2_64x48_nodht.jpg" <<'EOF'
# Copy a JPEG's marker segments up to the scan, dropping DHT (0xFFC4); the scan data follows as is.
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:2] == b"\xff\xd8"
out, i, dropped = bytearray(data[:2]), 2, 0
while True:
    marker = data[i + 1]
    length = struct.unpack(">H", data[i + 2:i + 4])[0]
    if marker == 0xC4:
        dropped += 1
    else:
        out += data[i:i + 2 + length]
    i += 2 + length
    if marker == 0xDA:
        break
out += data[i:]
assert dropped > 0, "the encoder wrote no DHT segment"
open(sys.argv[2], "wb").write(out)
EOF
ls -l "$out"
