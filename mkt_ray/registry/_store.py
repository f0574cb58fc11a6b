"""The model registry: versioned model entries per tenant in a local folder or an `s3://` URI (pyarrow.fs).

Layout under the root: `TENANT/VERSION/model.txt` (the LightGBM model), `TENANT/VERSION/entry.json`
(channel values per fitted model, metrics, data range, code version) and `TENANT/PROMOTED.json`, the
pointer the running pipeline follows. A version's `entry.json` is written last, so a reader never sees
a half-written version: without it the folder is not a version. Versions are named by creation time
(UTC, to the microsecond) plus a random suffix, so they sort by age and two jobs never collide.

`promote` replaces the pointer atomically: on a local folder it writes a temporary file and renames it
over the pointer (rename is atomic on POSIX); on S3 one PUT replaces an object whole.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs

from mkt_ray.contract._schema import is_valid_tenant_id
from mkt_ray.errors import InputError

ENTRY_FILE = "entry.json"
MODEL_FILE = "model.txt"
POINTER_FILE = "PROMOTED.json"


class ModelRegistry:
    """Model versions of every tenant under one root URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        if "://" in uri:
            self._fs, self._root = pafs.FileSystem.from_uri(uri)
        else:
            self._fs, self._root = pafs.LocalFileSystem(), uri
        self._root = self._root.rstrip("/")

    def publish(self, tenant: str, model_text: str, entry: dict[str, Any]) -> str:
        """Store a new version (model file, then entry); its version id. Not promoted."""
        _check_tenant(tenant)
        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
        folder = f"{self._root}/{tenant}/{version}"
        self._fs.create_dir(folder, recursive=True)
        self._write(f"{folder}/{MODEL_FILE}", model_text.encode())
        self._write(f"{folder}/{ENTRY_FILE}", json.dumps({**entry, "tenant": tenant, "version": version},
                                                          indent=1, sort_keys=True).encode())
        return version

    def tenants(self) -> list[str]:
        """Tenants with at least one folder in the registry."""
        infos = self._fs.get_file_info(pafs.FileSelector(self._root, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def versions(self, tenant: str) -> list[str]:
        """The tenant's complete versions, oldest first."""
        _check_tenant(tenant)
        infos = self._fs.get_file_info(pafs.FileSelector(f"{self._root}/{tenant}", allow_not_found=True))
        folders = sorted(i.path for i in infos if i.type == pafs.FileType.Directory)
        found = self._fs.get_file_info([f"{path}/{ENTRY_FILE}" for path in folders])
        return [path.rsplit("/", 1)[-1] for path, info in zip(folders, found, strict=True)
                if info.type == pafs.FileType.File]

    def entry(self, tenant: str, version: str) -> dict[str, Any]:
        """A version's entry; InputError naming the known versions if there is no such version."""
        _check_tenant(tenant)
        try:
            return json.loads(self._read(f"{self._root}/{tenant}/{version}/{ENTRY_FILE}"))
        except FileNotFoundError:
            known = self.versions(tenant)
            raise InputError(f"no model version {version!r} for tenant {tenant!r} in {self.uri}; "
                             f"known: {', '.join(known) or 'none (run training.train_attribution)'}") from None

    def model_text(self, tenant: str, version: str) -> str:
        self.entry(tenant, version)  # a clear error for an unknown version
        return self._read(f"{self._root}/{tenant}/{version}/{MODEL_FILE}").decode()

    def promote(self, tenant: str, version: str) -> dict[str, Any]:
        """Point the tenant's pipeline at `version` (which must exist); the new pointer."""
        self.entry(tenant, version)
        pointer = {"tenant": tenant, "version": version, "promoted_at": datetime.now(UTC).isoformat()}
        path = f"{self._root}/{tenant}/{POINTER_FILE}"
        data = json.dumps(pointer, sort_keys=True).encode()
        if isinstance(self._fs, pafs.LocalFileSystem):
            temporary = f"{path}.{secrets.token_hex(4)}.tmp"
            self._write(temporary, data)
            self._fs.move(temporary, path)  # rename(2): readers see the old pointer or the new one
        else:
            self._write(path, data)
        return pointer

    def promoted(self, tenant: str) -> str | None:
        """The promoted version of the tenant, None if none was promoted."""
        _check_tenant(tenant)
        try:
            return json.loads(self._read(f"{self._root}/{tenant}/{POINTER_FILE}"))["version"]
        except FileNotFoundError:
            return None

    def _write(self, path: str, data: bytes) -> None:
        with self._fs.open_output_stream(path) as out:
            out.write(data)

    def _read(self, path: str) -> bytes:
        try:
            with self._fs.open_input_stream(path) as src:
                return src.read()
        except (FileNotFoundError, OSError) as exc:
            if isinstance(exc, FileNotFoundError) or "not found" in str(exc).lower() or "no such" in str(exc).lower():
                raise FileNotFoundError(path) from exc
            raise


def _check_tenant(tenant: str) -> None:
    if not is_valid_tenant_id(tenant):
        raise InputError(f"{tenant!r} is not a tenant id (lower-case letters, digits, '_' and '-')")
