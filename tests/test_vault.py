"""The vault: created once, opened only with its passphrase, damage detected, never overwritten or leaked."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from agent import paths, vault
from conftest import real_photo, run_cli

PASSPHRASE = {"VAULT_PW": "correct horse battery staple"}


def secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), base64.b64encode(secret).decode(), base64.urlsafe_b64encode(secret).decode()]


def test_passphrase_vault_round_trip(home):
    run_cli("init", "--passphrase-env", "VAULT_PW", env=PASSPHRASE)
    path = paths.vault_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "isotopes-vault" and document["version"] == 1
    assert document["kdf"]["name"] == "scrypt" and document["kdf"]["n"] >= 2**15
    opened = vault.unlock(PASSPHRASE["VAULT_PW"])
    assert opened.protected and len(opened.secret) == 32
    assert vault.unlock(PASSPHRASE["VAULT_PW"]).secret == opened.secret
    assert opened.secret.hex() not in repr(opened)


def test_wrong_passphrase_is_a_clear_error(home):
    run_cli("init", "--passphrase-env", "VAULT_PW", env=PASSPHRASE)
    with pytest.raises(vault.WrongPassphrase):
        vault.unlock("not it")
    result = run_cli("marks", "preview", "--site", "a.com", "--out", str(home / "p.png"),
                     "--passphrase-env", "VAULT_PW", env={"VAULT_PW": "not it"}, check=False)
    assert result.returncode == 1 and "wrong passphrase" in result.stderr and "Traceback" not in result.stderr


def test_locked_vault_without_a_passphrase_source_says_how(home):
    run_cli("init", "--passphrase-env", "VAULT_PW", env=PASSPHRASE)
    result = run_cli("mark", str(real_photo()), "--site", "a.com", "--out", str(home / "o"), check=False)
    assert result.returncode == 1 and "--passphrase-env" in result.stderr


def test_second_init_refuses_and_keeps_the_vault(home):
    run_cli("init", "--passphrase-env", "VAULT_PW", env=PASSPHRASE)
    before = paths.vault_file().read_bytes()
    for args in (["--no-passphrase"], ["--passphrase-env", "VAULT_PW"]):
        result = run_cli("init", *args, env=PASSPHRASE, check=False)
        assert result.returncode == 1 and "already exists" in result.stderr
    assert paths.vault_file().read_bytes() == before
    with pytest.raises(vault.VaultExists):
        vault.create("another")
    assert paths.vault_file().read_bytes() == before
    assert [p.name for p in paths.vault_dir().iterdir()] == ["vault.json"]  # no temp files left behind


@pytest.mark.parametrize("damage", ["flip ciphertext byte", "truncate", "tamper header", "not json", "empty"])
def test_damaged_vault_is_detected(home, damage):
    vault.create("pw")
    path = paths.vault_file()
    raw = path.read_bytes()
    document = json.loads(raw)
    if damage == "flip ciphertext byte":
        blob = bytearray(base64.b64decode(document["ciphertext"]))
        blob[5] ^= 1
        document["ciphertext"] = base64.b64encode(bytes(blob)).decode()
        raw = json.dumps(document).encode()
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "tamper header":
        document["kdf"]["n"] = 2**14  # a downgraded work factor must not open the vault
        raw = json.dumps(document).encode()
    elif damage == "not json":
        raw = b"\x00\xff" * 50
    else:
        raw = b""
    path.write_bytes(raw)
    with pytest.raises((vault.VaultCorrupt, vault.WrongPassphrase)) as caught:
        vault.unlock("pw")
    assert "Traceback" not in str(caught.value)
    assert path.read_bytes() == raw  # reading never rewrites the file


def test_unprotected_vault_is_reported_as_weaker(home):
    result = run_cli("init", "--no-passphrase")
    assert "no passphrase" in result.stderr
    assert not vault.is_protected() and not vault.unlock(None).protected
    assert stat.S_IMODE(paths.vault_file().stat().st_mode) == 0o600


def test_missing_vault(home):
    result = run_cli("mark", str(real_photo()), "--site", "a.com", check=False)
    assert result.returncode == 1 and "isotopes init" in result.stderr


def test_secret_never_leaves_the_vault_file(home, tmp_path):
    run_cli("init", "--no-passphrase")
    secret = vault.unlock(None).secret
    outputs = [run_cli("mark", str(real_photo()), str(real_photo("Aqua")), "--site", "a.com", "--json",
                       "--out", str(tmp_path / "out")),
               run_cli("marks", "list", "--json"), run_cli("ledger", "list", "--json"),
               run_cli("marks", "rotate", "--site", "a.com", "--json"),
               run_cli("ledger", "find", str(tmp_path / "out" / "Wood.jpg"), "--json"),
               run_cli("mark", str(tmp_path / "missing.jpg"), "--site", "a.com", check=False)]
    text = "".join(result.stdout + result.stderr for result in outputs)
    for path in home.rglob("*"):
        if path.is_file() and path != paths.vault_file():
            text += path.read_bytes().decode("latin-1")
    for form in secret_forms(secret):
        assert form not in text
    assert secret not in text.encode("latin-1")
