"""OpenPGP encryption of files as they are written, with the ``gpg`` program.

The recipient's public key is imported (through python-gnupg) into a private, temporary
GNUPGHOME, so the user's own keyrings are never read or changed. Encryption streams: bytes
written to :class:`GpgStream` go to ``gpg --encrypt`` on its standard input, and a thread
copies its output to the destination as it comes, so memory stays bounded whatever the file's
size (python-gnupg's own ``encrypt_file`` would hold the output in memory or need a local path).
"""

from __future__ import annotations

__all__ = ["GpgStream", "PgpKey"]

import contextlib
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from activator.errors import DestinationError, MissingExtraError

CHUNK = 1 << 16


class PgpKey:
    """A recipient's public key imported into a temporary keyring.

    Args:
        armored: The key (armored text, or the bytes of a binary key file).
        source: Where the key came from, for messages (a path or a secret's name).

    Raises:
        MissingExtraError: python-gnupg is not installed.
        DestinationError: ``gpg`` is missing, or the text holds no usable public key.
    """

    def __init__(self, armored: str | bytes, source: str) -> None:
        try:
            import gnupg
        except ImportError as exc:  # pragma: no cover - the extra is installed in development
            raise MissingExtraError("pgp", "python-gnupg") from exc
        self.binary = shutil.which("gpg") or "/usr/bin/gpg"
        self.source = source
        # A short path: gpg's sockets must fit in a Unix socket name.
        self.home = tempfile.mkdtemp(
            prefix="act-gpg-", dir="/tmp" if Path("/tmp").is_dir() else None
        )
        try:
            gpg = gnupg.GPG(gpgbinary=self.binary, gnupghome=self.home)
            result = gpg.import_keys(armored)
            fingerprints = [str(f) for f in result.fingerprints if f]
            if not fingerprints:
                raise DestinationError(
                    f"pgp.public_key ({source}) holds no OpenPGP public key",
                    hint="give the recipient's key as exported by `gpg --export --armor <id>`",
                    attribution="configuration",
                )
            keys: list[dict[str, Any]] = list(gpg.list_keys())
        except OSError as exc:
            self.cleanup()
            raise DestinationError(
                f"cannot run gpg ({self.binary}): {exc}",
                hint="install GnuPG (apt-get install gnupg)",
                attribution="configuration",
            ) from exc
        except BaseException:
            self.cleanup()
            raise
        self.fingerprints = fingerprints
        self.expired = [k["fingerprint"] for k in keys if k.get("trust") in ("e", "r")]

    def describe(self) -> str:
        """The key's fingerprints (safe to show)."""
        return ", ".join(self.fingerprints)

    def encrypt(self, sink: IO[bytes] | Any) -> GpgStream:
        """Start encrypting into ``sink``; write the clear bytes to the returned stream."""
        return GpgStream(self, sink)

    def cleanup(self) -> None:
        """Remove the temporary keyring."""
        shutil.rmtree(self.home, ignore_errors=True)


class GpgStream:
    """A writable stream that encrypts into a sink through a ``gpg`` process."""

    def __init__(self, key: PgpKey, sink: IO[bytes] | Any) -> None:
        self._key = key
        self._sink = sink
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process
        command = [key.binary, "--homedir", key.home, "--batch", "--no-tty", "--quiet"]
        command += ["--trust-model", "always", "--no-auto-key-locate", "--encrypt"]
        for fingerprint in key.fingerprints:
            command += ["--recipient", fingerprint]
        command += ["--output", "-"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors
        )
        self._failure: BaseException | None = None
        self._pump = threading.Thread(target=self._copy, name="gpg-output", daemon=True)
        self._pump.start()
        self.position = 0

    def _copy(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while chunk := stdout.read(CHUNK):
                self._sink.write(chunk)
        except BaseException as exc:  # reported by close(); the process is killed there
            self._failure = exc

    def write(self, data: Any) -> int:
        """Encrypt ``data`` (any bytes-like object)."""
        stdin = self._process.stdin
        assert stdin is not None
        view = memoryview(data)
        try:
            stdin.write(view)
        except BrokenPipeError:
            self.close()  # raises gpg's own message
            raise DestinationError("gpg stopped reading its input") from None
        self.position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        """Clear bytes written so far."""
        return self.position

    def close(self) -> None:
        """Finish the encryption and wait for every encrypted byte to reach the sink.

        Raises:
            DestinationError: gpg failed (its message, which holds no key material).
        """
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        self._pump.join()
        code = self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        try:
            if self._failure is not None:
                raise self._failure
            if code != 0:
                self._errors.seek(0)
                message = self._errors.read().decode(errors="replace").strip()[-500:]
                raise DestinationError(
                    f"gpg could not encrypt for the key in pgp.public_key ({self._key.source}): "
                    f"{message or f'exit status {code}'}",
                    hint="check that the key is valid, not expired, and can encrypt",
                    attribution="configuration",
                )
        finally:
            self._errors.close()

    def kill(self) -> None:
        """Stop the process after a failure elsewhere (nothing is reported)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        self._pump.join()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._errors.close()
