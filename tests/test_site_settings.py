"""A site's settings on disk: what a later release's new defaults may and may not change."""

from __future__ import annotations

from agent import db, settings


def test_a_site_keeps_the_strength_it_was_enabled_with_when_the_default_changes(home, monkeypatch):
    """Verification blends each mark at the strength its uploads had, so a site's strength is written out when
    the site is first saved, never left to follow the default of whatever release reads it later."""
    conn = db.connect()
    settings.update(conn, "photos.example", enabled=True)
    (stored,) = conn.execute("SELECT alpha FROM sites WHERE site = 'photos.example'").fetchone()
    assert stored == settings.DEFAULT_ALPHA
    monkeypatch.setattr(settings, "DEFAULT_ALPHA", 0.2)  # a later release with another default
    assert settings.get(conn, "photos.example").alpha == stored
    settings.update(conn, "photos.example", rotation_seconds=86400)  # changing something else keeps it too
    assert settings.get(conn, "photos.example").alpha == stored
