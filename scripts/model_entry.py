#!/usr/bin/env python3
"""Prints the models/models.json entry of a shipped model's checkpoint (its size and CRC-32C, which
unet checks before each use), to paste into models/models.json:

    python3 scripts/model_entry.py nuclei-he models/nuclei-he/checkpoint.pt "nuclei in H&E images ..."
"""
import json
import sys
from pathlib import Path

TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    name, file, summary = sys.argv[1:]
    data = Path(file).read_bytes()
    rel = Path(file).resolve().relative_to(Path(__file__).resolve().parent.parent / "models")
    entry = {"file": str(rel), "bytes": len(data), "crc32c": crc32c(data), "summary": summary}
    print(json.dumps({name: entry}, indent=2))


if __name__ == "__main__":
    main()
