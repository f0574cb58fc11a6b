"""Parquet modular encryption for the raw store: AES-GCM, 256-bit keys, the footer encrypted too.

pyarrow's encryption API works through a KMS: every file gets fresh data keys, which a `KmsClient`
wraps under a master key and stores in the file's metadata. Production KMSs (Vault, AWS KMS) fit that
slot; `LocalKmsClient` is the in-process one: it wraps data keys with AES-GCM under the master key
configured in `raw_store.encryption_key` or `raw_store.encryption_key_file` (32 bytes, hex or base64).
A file written this way reveals nothing, not even its schema, without that key.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mkt_ray.errors import ConfigError, MktRayError
from mkt_ray.settings import RawStoreSettings

if TYPE_CHECKING:
    import pyarrow.dataset as ds

KEY_BYTES = 32  # AES-256
MASTER_KEY_ID = "mkt-raw-master"
_NONCE_BYTES = 12
_SEALED = b"MKTSEAL1"  # starts every sealed blob; a pickle starts with its protocol byte, 0x80
_CACHE = timedelta(hours=1)


class RawKeyError(MktRayError):
    """An encrypted raw file was read without its key, or with another key."""


def parse_key(text: str, where: str) -> bytes:
    """A 256-bit key from 64 hex digits or base64 of 32 bytes; anything else is a clear ConfigError."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where}: expected a 256-bit key as 64 hex digits or base64 of 32 bytes "
                          "(e.g. `openssl rand -hex 32`)")
    return key


def raw_key(settings: RawStoreSettings) -> bytes | None:
    """The raw store's master key from the settings (inline secret or key file); None = unencrypted."""
    if settings.encryption_key is not None and settings.encryption_key_file is not None:
        raise ConfigError("raw_store: set encryption_key or encryption_key_file, not both")
    if settings.encryption_key is not None:
        return parse_key(settings.encryption_key.get_secret_value(), "raw_store.encryption_key")
    if settings.encryption_key_file is not None:
        try:
            text = settings.encryption_key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"raw_store.encryption_key_file {settings.encryption_key_file}: {exc.strerror}") from exc
        return parse_key(text, f"raw_store.encryption_key_file {settings.encryption_key_file}")
    return None


class LocalKmsClient(pe.KmsClient):
    """Wraps and unwraps Parquet data keys with AES-GCM under an in-process master key."""

    def __init__(self, master_key: bytes) -> None:
        super().__init__()
        self._aead = AESGCM(master_key)

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return base64.b64encode(_encrypt(self._aead, key_bytes, master_key_identifier)).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return _decrypt(self._aead, base64.b64decode(wrapped_key), master_key_identifier,
                        "raw store: the configured key does not open this file "
                        "(written with another raw_store.encryption_key)")


def _encrypt(aead: AESGCM, data: bytes, label: str) -> bytes:
    """A fresh nonce, then `data` sealed with it and bound to `label`."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + aead.encrypt(nonce, data, label.encode())


def _decrypt(aead: AESGCM, blob: bytes, label: str, refusal: str) -> bytes:
    """What `_encrypt` sealed under `label`; RawKeyError(refusal) with another key or label."""
    try:
        return aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], label.encode())
    except InvalidTag:
        raise RawKeyError(refusal) from None


def seal(data: bytes, master_key: bytes, label: str) -> bytes:
    """`data` encrypted with AES-GCM under the master key and bound to `label` (what the bytes are, e.g.
    which partition and offset a checkpoint holds: sealed bytes moved under another label do not open),
    behind a header that marks them sealed."""
    return _SEALED + _encrypt(AESGCM(master_key), data, label)


def is_sealed(blob: bytes) -> bool:
    """Whether `blob` was written by `seal`."""
    return blob.startswith(_SEALED)


def unseal(blob: bytes, master_key: bytes | None, label: str) -> bytes:
    """The bytes `seal` sealed under `label`. Bytes without the header (written while the store was not
    encrypted) come back as they are when no key is given: with a key, plain bytes carry no proof of where
    they came from. RawKeyError without the key, with another one, or for plain bytes under a key."""
    if not is_sealed(blob):
        if master_key is None:
            return blob
        raise RawKeyError(
            f"{label} is not sealed although raw_store.encryption_key is set: written before encryption was "
            "turned on, or put there by someone without the key. It is not loaded (loading a checkpoint runs "
            "code it holds). If it is yours, set raw_store.read_plain_checkpoints=true for one restart: the "
            "partition's plain checkpoints are then sealed in place. Or delete them: the partition's state is "
            "then rebuilt by replaying it from its first offset, complete only while the topic still holds "
            "all of it")
    if master_key is None:
        raise RawKeyError(f"{label} is encrypted: configure raw_store.encryption_key or encryption_key_file")
    return _decrypt(AESGCM(master_key), blob[len(_SEALED):], label, f"{label}: the configured key does not open "
                    "it (sealed with another raw_store.encryption_key, or not for this name)")


def _factory(master_key: bytes) -> tuple[pe.CryptoFactory, pe.KmsConnectionConfig]:
    return pe.CryptoFactory(lambda _config: LocalKmsClient(master_key)), pe.KmsConnectionConfig()


def file_encryption(master_key: bytes) -> pq.FileEncryptionProperties:
    """Encryption properties for one Parquet file (fresh data keys): every column and the footer."""
    factory, connection = _factory(master_key)
    config = pe.EncryptionConfiguration(
        footer_key=MASTER_KEY_ID, uniform_encryption=True, encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False, data_key_length_bits=KEY_BYTES * 8, cache_lifetime=_CACHE)
    return factory.file_encryption_properties(connection, config)


def read_format(master_key: bytes) -> ds.ParquetFileFormat:
    """The Parquet format that decrypts files written with `file_encryption` under the same key."""
    import pyarrow.dataset as ds  # imported here: pyarrow.dataset imports pandas (see raw_partitioning)

    factory, connection = _factory(master_key)
    decryption = ds.ParquetDecryptionConfig(factory, connection, pe.DecryptionConfiguration(cache_lifetime=_CACHE))
    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(decryption_config=decryption))
