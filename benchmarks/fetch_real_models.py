"""Download the real models the tests and docs/RESULTS.md use, check their sha256, and put them
where the tests look (``<repo>/real_models/``, git-ignored; ``tests/conftest.py`` also looks in
``../shared/real_models/`` beside the checkout).

    python benchmarks/fetch_real_models.py                       # every model in URLS
    python benchmarks/fetch_real_models.py --url fmnist_cnn_keras2.h5=file:///tmp/copy.h5
    python benchmarks/fetch_real_models.py --dest /elsewhere fmnist_cnn_keras3.h5
    python benchmarks/fetch_real_models.py --from /media/copies   # offline: a folder you filled

It needs the network unless --from (or a file:// --url) names copies already on this machine.

A download whose sha256 is not the pinned one is refused in one line (exit 1) and not kept: it is
written to a temporary file beside the destination and renamed only once its hash matches.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "real_models"

# sha256 of the files in ../shared/real_models (the copies every result in docs/RESULTS.md was
# measured on).
SHA256 = {
    "fmnist_cnn_keras2.h5": "d401723ee69c02473e128d289f30e72e200c3b8bb2634d96a5e94822ee51e4a7",
    "fmnist_cnn_keras3.h5": "18d8f402fb397f96a3d7462a35663a82d7fb50fa309cff9d0a5b66afd51c2499",
}

# PLACEHOLDERS, not tried from here (no network): raw-file addresses built from the origins
# listed in ../shared/real_models/README.md (repository @ short commit, path). Replace them with
# the published addresses, or pass --url NAME=URL; the sha256 check guards either way.
URLS = {
    "fmnist_cnn_keras2.h5": "https://raw.githubusercontent.com/gokulnpc/Fashion-MNIST-Image-Classification/"
                            "31b7c22f/fashion_mnist_model.h5",
    "fmnist_cnn_keras3.h5": "https://raw.githubusercontent.com/ThiruvarankanM/FashionMNIST-CNN/"
                            "30aefc6b/fashion_mnist_model.h5",
}

CHUNK = 1 << 20


class FetchError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, url: str, dest: Path, timeout: float = 60.0) -> Path:
    """``dest/name`` from ``url`` if its sha256 is the pinned one; nothing is left otherwise."""
    if name not in SHA256:
        raise FetchError(f"{name}: no pinned sha256 (known: {', '.join(SHA256)})")
    target = dest / name
    if target.exists() and sha256_of(target) == SHA256[name]:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != SHA256[name]:
            raise FetchError(f"{name}: sha256 {digest.hexdigest()} from {url} is not the pinned "
                             f"{SHA256[name]}; nothing kept")
        os.replace(tmp, target)
        return target
    except OSError as err:  # URLError is an OSError
        offline = "" if url.startswith("file:") else (
            "; this script needs the network (or run it with --from FOLDER holding copies of the files, "
            "or --url NAME=file:///path/to/copy)")
        raise FetchError(f"{name}: cannot download {url}: {getattr(err, 'reason', err)}{offline}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"models to fetch (default: all of {', '.join(SHA256)})")
    parser.add_argument("--dest", type=Path, default=DEST, help="folder to put them in (default: real_models/)")
    parser.add_argument("--url", action="append", default=[], metavar="NAME=URL",
                        help="download NAME from URL instead of the table (repeatable; file:// works)")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="FOLDER",
                        help="offline: take each file from FOLDER (copies you made), checked against its sha256")
    args = parser.parse_args(argv)
    urls = dict(URLS)
    if args.source is not None:
        if not args.source.is_dir():
            print(f"error: --from {args.source} is not a folder", file=sys.stderr)
            return 2
        urls.update({name: (args.source / name).resolve().as_uri() for name in SHA256})
    for item in args.url:
        name, sep, url = item.partition("=")
        if not sep or not url:
            print(f"error: --url {item!r} is not NAME=URL", file=sys.stderr)
            return 2
        urls[name] = url
    try:
        for name in args.names or list(SHA256):
            path = fetch(name, urls.get(name, ""), args.dest)
            print(f"{name}: {path} (sha256 ok)")
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
