"""The run's random file, hashing, and finding what a server stored."""
import contextlib
import hashlib
import os
import shutil

MiB = 1 << 20


def make_file(path, size):
    """A random file (ASCII header, then os.urandom) reused across runs when its size matches."""
    sidecar = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == size and os.path.exists(sidecar):
        return open(sidecar).read().strip()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        head = b"twisted-uploads bench file\n"
        f.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            b = os.urandom(min(4 * MiB, left))
            f.write(b)
            h.update(b)
            left -= len(b)
    with open(sidecar, "w") as f:
        f.write(h.hexdigest())
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MiB), b""):
            h.update(b)
    return h.hexdigest()


def iter_files_of_size(d, size):
    for dp, _, names in os.walk(d):
        for n in names:
            p = os.path.join(dp, n)
            with contextlib.suppress(OSError):
                if os.path.getsize(p) == size:
                    yield p


def verify_stored(directory, size, digest):
    """The newest file of exactly `size` bytes under `directory` has SHA-256 `digest`."""
    found = []
    for p in iter_files_of_size(directory, size):
        with contextlib.suppress(OSError):
            found.append((os.path.getmtime(p), p))
    if not found:
        return False
    return sha256_file(max(found)[1]) == digest


def empty_dir(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)


def empty_dir_contents(d):
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)
