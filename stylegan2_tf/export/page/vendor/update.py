"""Fetch TensorFlow.js from the npm registry into this folder (a maintainer's step, never run by exports).

  python stylegan2_tf/export/page/vendor/update.py [--version 4.22.0]
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KNOWN = {"4.22.0": "56505c191e24116787477b3bb5bb1cc0cf1c2bdce8112b9c402a8a2d31cf2f00"}
MEMBER = "package/dist/tf.es2017.min.js"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="4.22.0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"@tensorflow/tfjs@{args.version}"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tgz = os.path.join(tmp, f"tensorflow-tfjs-{args.version}.tgz")
        digest = hashlib.sha256(open(tgz, "rb").read()).hexdigest()
        if args.version in KNOWN and digest != KNOWN[args.version]:
            sys.exit(f"error: {tgz}: sha256 {digest} is not the recorded {KNOWN[args.version]}")
        with tarfile.open(tgz) as tar:
            data = tar.extractfile(MEMBER).read()
    with open(os.path.join(HERE, "tf.es2017.min.js"), "wb") as f:
        f.write(data)
    print(f"tarball sha256 {digest}\ntf.es2017.min.js sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
