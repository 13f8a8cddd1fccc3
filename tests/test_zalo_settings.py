"""Zalo's settings, the secrets masked in logs, and ``run --channel``."""

from __future__ import annotations

import argparse

import pytest

from bot.cli import parse_channels
from bot.logs import redact, register_settings_secrets
from bot.settings import Settings
from bot.zalo import ZaloConfigError, zalo_admins, zalo_webhook
from contest.model import Account


def test_zalo_settings_and_their_secrets_in_logs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONTEST_ZALO_TOKEN", "987654321:zalo-TOKEN-very-secret-value")
    monkeypatch.setenv("CONTEST_ZALO_WEBHOOK_SECRET", "khoa-bi-mat-webhook-zalo")
    monkeypatch.setenv("CONTEST_ZALO_WEBHOOK_URL", "https://bot.example.org/zalo/duong-an-9f3k")
    monkeypatch.setenv("CONTEST_ZALO_ADMIN_IDS", "1234567890123, 555; 777")
    settings = Settings(_env_file=None)
    assert zalo_admins(settings) == {
        Account.zalo("1234567890123"),
        Account.zalo("555"),
        Account.zalo("777"),
    }
    register_settings_secrets(settings)
    line = (
        "POST https://bot-api.zaloplatforms.com/bot987654321:zalo-TOKEN-very-secret-value/"
        "sendMessage secret=khoa-bi-mat-webhook-zalo path=/zalo/duong-an-9f3k"
    )
    masked = redact(line)
    assert "zalo-TOKEN" not in masked and "khoa-bi-mat" not in masked
    assert "duong-an-9f3k" not in masked
    webhook = zalo_webhook(settings)
    assert webhook.path == "/zalo/duong-an-9f3k"


def test_a_webhook_needs_an_address_and_a_secret():
    with pytest.raises(ZaloConfigError, match="CONTEST_ZALO_WEBHOOK_URL"):
        zalo_webhook(Settings(_env_file=None, zalo_webhook_secret="12345678"))
    with pytest.raises(ZaloConfigError, match="CONTEST_ZALO_WEBHOOK_SECRET"):
        zalo_webhook(
            Settings(
                _env_file=None,
                zalo_webhook_url="https://x.example/zalo/a",
                zalo_webhook_secret="ngan",
            )
        )


def test_channels_of_run():
    assert parse_channels("zalo") == {"zalo"}
    assert parse_channels("Telegram, zalo") == {"telegram", "zalo"}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_channels("viber")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_channels(",")


def test_run_on_zalo_without_a_token_says_which_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from bot.cli import main

    monkeypatch.delenv("CONTEST_ZALO_TOKEN", raising=False)
    monkeypatch.setenv("CONTEST_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    assert main(["run", "--channel", "zalo"]) == 2
    assert "CONTEST_ZALO_TOKEN" in capsys.readouterr().err
