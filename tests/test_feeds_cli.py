"""``ingest feeds list|status|reset|import|export`` on real config files and a SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ingest import cli_feeds
from ingest.atomic import write_atomically
from ingest.cli import app
from ingest.config import load_config
from ingest.errors import ConfigError
from ingest.model import Entry, Feed, FeedState
from ingest.store.base import Notice, PollRecord
from ingest.store.sql import open_store

runner = CliRunner()
TOKEN = "s3cret-token-value"
FEEDS_YAML = f"""\
# Our feeds: keep this comment.
feeds:
  - id: wire
    url: https://news.example.org/wire.xml
    title: Example wire
    tags: [world, wire]
    interval: 5m
    min_interval: 1m
    fulltext: true
    headers: {{Authorization: "Bearer {TOKEN}"}}

  - id: desk
    url: https://desk.example.net/feed/
    title: The desk
    enabled: false
# trailing comment
"""


def ingest(*args: str) -> Result:
    return runner.invoke(app, list(args))


def write_config(tmp_path: Path, extra: str = "feed_files: [feeds.yaml]\n",
                 feeds: str | None = FEEDS_YAML) -> Path:
    """An ingest.yaml with its own SQLite file and, beside it, ``feeds`` as feeds.yaml."""
    if feeds is not None:
        (tmp_path / "feeds.yaml").write_text(feeds, encoding="utf-8")
    config = tmp_path / "ingest.yaml"
    config.write_text(f"# my config\nlog: {{level: warning}}\n"
                      f"database_url: sqlite:///{tmp_path / 'ingest.db'}\n{extra}",
                      encoding="utf-8")
    return config


def opml(outlines: list[str]) -> str:
    body = "\n".join(f"    {o}" for o in outlines)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n  <head><title>x'
            f"</title></head>\n  <body>\n  <outline text=\"folder\">\n{body}\n  </outline>\n"
            "  </body>\n</opml>\n")


def outline(title: str, url: str, category: str = "") -> str:
    cat = f' category="{category}"' if category else ""
    return f'<outline type="rss" text="{title}" title="{title}" xmlUrl="{url}"{cat}/>'


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of a printed table, by their first cell (cells are 2+ spaces apart)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]
    return {r[0]: r for r in rows if len(r) > 3}


def fill_database(config: Path, now: datetime) -> None:
    """Sync the configured feeds, then record polls: wire healthy and publishing, desk
    gone (410), moved (a permanent redirect) and failing (three 503s)."""
    settings = load_config(config)
    feeds = [*settings.all_feeds(), Feed("moved", "https://old.example.com/rss"),
             Feed("failing", "https://down.example.com/rss")]

    async def work() -> None:
        store = open_store(settings.database_url)
        try:
            await store.init()
            await store.sync_feeds(feeds, now - timedelta(hours=1))
            await store.record_polls([
                PollRecord(FeedState("wire", "https://news.example.org/wire.xml",
                                     next_poll_at=now + timedelta(minutes=5),
                                     last_success_at=now - timedelta(minutes=3),
                                     fetch_time_avg_s=0.25),
                           now - timedelta(minutes=3), ok=True),
                PollRecord(FeedState("desk", "https://desk.example.net/feed/", error_count=1,
                                     last_error="HTTP 410 Gone", health="disabled",
                                     disabled_reason="the server answered 410 Gone"),
                           now - timedelta(hours=2), ok=False),
                PollRecord(FeedState("moved", "https://new.example.com/rss",
                                     next_poll_at=now + timedelta(minutes=10)),
                           now - timedelta(minutes=20), ok=True),
                PollRecord(FeedState("failing", "https://down.example.com/rss", error_count=3,
                                     last_error="HTTP 503 Service Unavailable",
                                     health="failing", failing_since=now - timedelta(days=2),
                                     next_poll_at=now + timedelta(hours=1)),
                           now - timedelta(minutes=30), ok=False)])
            await store.add_entries([
                Entry("wire", f"k{i}", f"Story {i}", f"https://news.example.org/{i}", "", "",
                      now - timedelta(days=i % 7)) for i in range(14)], now)
            await store.record_polls([], [Notice("failing", "failing",
                                               "failing for 2 days: HTTP 503", now)])
        finally:
            await store.close()

    asyncio.run(work())


# -- list -----------------------------------------------------------------------------------

def test_list_shows_each_feed_with_its_options_and_source(tmp_path: Path) -> None:
    """Inline and file feeds are listed with intervals, options, enabled and source file."""
    config = write_config(tmp_path, "feed_files: [feeds.yaml]\nfeeds:\n"
                                    "  - {id: inline, url: 'https://in.example.com/rss'}\n")
    result = ingest("feeds", "list", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows["wire"][1:5] == ["yes", "5m (1m–6h)", "world,wire",
                                 "fulltext; headers: Authorization"]
    assert rows["desk"][1] == "no"
    assert rows["inline"][2] == "15m (2m–6h)"

    listed = json.loads(ingest("feeds", "list", "--json", "--config", str(config)).stdout)
    by_id = {f["id"]: f for f in listed}
    assert [f["id"] for f in listed] == ["inline", "wire", "desk"]
    assert by_id["wire"] | {"source": None} == {
        "id": "wire", "url": "https://news.example.org/wire.xml", "title": "Example wire",
        "tags": ["world", "wire"], "interval_s": 300.0, "min_interval_s": 60.0,
        "max_interval_s": 21600.0, "defaults": ["max_interval"], "fulltext": True,
        "enabled": True, "headers": ["Authorization"], "source": None}
    assert by_id["wire"]["source"] == str(tmp_path / "feeds.yaml")
    assert by_id["inline"]["source"] == str(config)


def test_header_values_are_never_printed(tmp_path: Path) -> None:
    """No command shows a header's value: list, status and both exports."""
    config = write_config(tmp_path)
    fill_database(config, datetime.now(UTC))
    for args in (["list"], ["list", "--json"], ["status"], ["status", "--json"],
                 ["status", "wire"], ["status", "wire", "--json"], ["export"],
                 ["export", "--format", "yaml"]):
        result = ingest("feeds", *args, "--config", str(config))
        assert result.exit_code == 0, (args, result.output)
        assert TOKEN not in result.output, args
        assert TOKEN not in result.stderr, args
    assert "headers of 1 feed(s) are left out" in ingest(
        "feeds", "export", "--format", "yaml", "--config", str(config)).stderr


# -- status and reset -----------------------------------------------------------------------

def test_status_table(tmp_path: Path) -> None:
    """One row per feed with health, last success, errors, next poll, rate and fetch time;
    advice under the table for moved and disabled feeds."""
    config = write_config(tmp_path)
    fill_database(config, datetime.now(UTC))
    result = ingest("feeds", "status", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows["wire"] == ["wire", "ok", "3m ago", "0", "in 5m", "2.0", "250 ms", "-"]
    assert rows["failing"][:5] == ["failing", "failing", "never", "3", "in 1h"]
    assert rows["failing"][7] == "30m ago: HTTP 503 Service Unavailable"
    assert rows["desk"][:5] == ["desk", "disabled", "never", "1", "not polled"]
    assert rows["moved"][1:3] == ["ok", "20m ago"]
    assert ("moved: moved to https://new.example.com/rss: update the config"
            in result.stdout)
    assert "desk: disabled: the server answered 410 Gone (`ingest feeds reset desk`" \
        in result.stdout
    assert result.stdout.rstrip().endswith("4 feeds: 1 disabled, 1 failing, 2 ok")


def test_status_json_shape(tmp_path: Path) -> None:
    """--json: one object per feed, times in ISO 8601, the moved feed's new URL."""
    now = datetime.now(UTC)
    config = write_config(tmp_path)
    fill_database(config, now)
    result = ingest("feeds", "status", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    by_id = {s["id"]: s for s in json.loads(result.stdout)}
    assert sorted(by_id) == ["desk", "failing", "moved", "wire"]
    wire = by_id["wire"]
    assert wire["health"] == "ok" and wire["error_count"] == 0
    assert wire["fetch_time_avg_ms"] == 250.0 and wire["entries_per_day"] == 2.0
    assert wire["source"] == str(tmp_path / "feeds.yaml") and wire["moved_to"] is None
    assert abs(datetime.fromisoformat(wire["last_success_at"])
               - (now - timedelta(minutes=3))) < timedelta(seconds=1)
    assert by_id["moved"]["moved_to"] == "https://new.example.com/rss"
    assert by_id["moved"]["url"] == "https://old.example.com/rss"
    assert by_id["moved"]["in_config"] is False
    assert by_id["failing"]["last_error"] == "HTTP 503 Service Unavailable"
    assert by_id["desk"]["disabled_reason"].startswith("the server answered 410 Gone")
    assert by_id["desk"]["disabled_by"] == "server" and by_id["desk"]["next_poll_at"] is None


def test_configured_but_never_polled_shows_never(tmp_path: Path) -> None:
    """A feed in the config but not yet in the database: health new, last success never."""
    config = write_config(tmp_path)
    fill_database(config, datetime.now(UTC))
    with (tmp_path / "feeds.yaml").open("a", encoding="utf-8") as fh:
        fh.write("  - {id: fresh, url: 'https://fresh.example.com/rss'}\n")
    result = ingest("feeds", "status", "--config", str(config))
    assert table_rows(result.stdout)["fresh"][:5] == ["fresh", "new", "never", "0", "at start"]
    assert "fresh: not in the database yet: the service adds it when it next starts" \
        in result.stdout


def test_status_of_one_feed_lists_its_notices(tmp_path: Path) -> None:
    """`feeds status ID` shows the feed in detail with its notices; --json too."""
    config = write_config(tmp_path)
    fill_database(config, datetime.now(UTC))
    result = ingest("feeds", "status", "failing", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "errors       3 in a row, failing since 2d ago" in result.stdout
    assert re.search(r"notices:\n  \S+ \S+ UTC  failing\s+failing for 2 days: HTTP 503  "
                     r"\[logged\]", result.stdout)
    detail = json.loads(ingest("feeds", "status", "failing", "--json", "--config",
                               str(config)).stdout)
    assert detail["health"] == "failing"
    assert [n["message"] for n in detail["notices"]] == ["failing for 2 days: HTTP 503"]
    unknown = ingest("feeds", "status", "nope", "--config", str(config))
    assert unknown.exit_code == 2 and "no feed 'nope'" in unknown.stderr


def test_status_without_a_database_exits_2(tmp_path: Path) -> None:
    """No database file yet: exit 2 naming the file and the config to check."""
    config = write_config(tmp_path)
    result = ingest("feeds", "status", "--config", str(config))
    assert result.exit_code == 2
    assert f"no database at {tmp_path / 'ingest.db'}" in result.stderr
    assert f"check database_url in {config}" in result.stderr
    assert not (tmp_path / "ingest.db").exists()


def test_reset_clears_a_disabled_feed(tmp_path: Path) -> None:
    """reset: the 410 feed is ok again, errors cleared and due now; unknown ids exit 2."""
    config = write_config(tmp_path)
    fill_database(config, datetime.now(UTC))
    result = ingest("feeds", "reset", "failing", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "failing: errors and disabling cleared" in result.stdout
    after = {s["id"]: s for s in json.loads(
        ingest("feeds", "status", "--json", "--config", str(config)).stdout)}
    assert after["failing"]["health"] == "ok" and after["failing"]["error_count"] == 0
    next_poll = datetime.fromisoformat(after["failing"]["next_poll_at"])
    assert next_poll <= datetime.now(UTC)

    desk = ingest("feeds", "reset", "desk", "--config", str(config))
    assert desk.exit_code == 0
    assert "desk is not enabled in the config" in desk.stderr  # enabled: false stays so
    assert json.loads(ingest("feeds", "status", "desk", "--json", "--config",
                             str(config)).stdout)["disabled_reason"].startswith(
        "enabled: false in")

    unknown = ingest("feeds", "reset", "nope", "--config", str(config))
    assert unknown.exit_code == 2
    assert "no feed 'nope' in the database" in unknown.stderr


# -- import ---------------------------------------------------------------------------------

def test_import_of_1000_outlines(tmp_path: Path) -> None:
    """A 1,000-feed OPML file: all appended to feeds.yaml, whose comments stay, and the
    config loads them all."""
    config = write_config(tmp_path)
    source = tmp_path / "big.opml"
    source.write_text(opml([outline(f"Feed {i}", f"https://site{i}.example.com/rss",
                                    "bulk") for i in range(1000)]), encoding="utf-8")
    result = ingest("feeds", "import", str(source), "--tag", "imported", "--config",
                    str(config))
    assert result.exit_code == 0, result.output
    assert "1000 imported into" in result.stdout
    assert "0 already present, 0 invalid" in result.stdout
    assert "checking" not in result.stderr  # no progress bar: not a terminal
    text = (tmp_path / "feeds.yaml").read_text(encoding="utf-8")
    assert text.startswith(FEEDS_YAML.removesuffix("# trailing comment\n"))
    assert text.rstrip().endswith("# trailing comment")
    feeds = {f.id: f for f in load_config(config).all_feeds()}
    assert len(feeds) == 1002
    assert feeds["feed-999"].url == "https://site999.example.com/rss"
    assert feeds["feed-999"].tags == ("bulk", "imported")
    assert feeds["wire"].headers == (("Authorization", f"Bearer {TOKEN}"),)

    again = ingest("feeds", "import", str(source), "--config", str(config))
    assert again.exit_code == 0
    assert "0 imported into" in again.stdout and "1000 already present" in again.stdout
    assert (tmp_path / "feeds.yaml").read_text(encoding="utf-8") == text


def test_import_shows_progress_on_a_terminal(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, a large import draws a progress bar on stderr."""
    config = write_config(tmp_path)
    source = tmp_path / "big.opml"
    source.write_text(opml([outline(f"F{i}", f"https://f{i}.example.com/")
                            for i in range(150)]), encoding="utf-8")
    monkeypatch.setattr(cli_feeds, "on_terminal", lambda: True)
    result = ingest("feeds", "import", str(source), "--dry-run", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "checking 150 feeds" in result.stderr


def test_import_with_bad_urls_lists_them_all_and_writes_nothing(tmp_path: Path) -> None:
    """Three bad URLs among 50: exit 2, each named with its line, the list unchanged;
    --skip-invalid imports the other 47."""
    config = write_config(tmp_path)
    outlines = [outline(f"Good {i}", f"https://good{i}.example.com/feed") for i in range(50)]
    outlines[5] = outline("No scheme", "news.example.com/rss")
    outlines[20] = outline("Ftp", "ftp://files.example.com/feed.xml")
    outlines[40] = outline("Spaced", "https://bad host.example.com/feed")
    source = tmp_path / "mixed.opml"
    source.write_text(opml(outlines), encoding="utf-8")
    before = (tmp_path / "feeds.yaml").read_bytes()

    result = ingest("feeds", "import", str(source), "--config", str(config))
    assert result.exit_code == 2
    lines = source.read_text(encoding="utf-8").splitlines()
    for url, why in (("news.example.com/rss", "not an absolute URL"),
                     ("ftp://files.example.com/feed.xml", "ftp: URLs are not imported"),
                     ("https://bad host.example.com/feed", "contains spaces")):
        line = next(i for i, text in enumerate(lines, 1) if f'xmlUrl="{url}"' in text)
        assert f"{source}:{line}: {url!r}: {why}" in result.stderr
    assert "3 of 50 feeds" in result.stderr and "nothing was imported" in result.stderr
    assert (tmp_path / "feeds.yaml").read_bytes() == before

    skipped = ingest("feeds", "import", str(source), "--skip-invalid", "--config", str(config))
    assert skipped.exit_code == 0, skipped.output
    assert "47 imported into" in skipped.stdout and "3 invalid" in skipped.stdout
    assert len(load_config(config).all_feeds()) == 49


def test_import_skips_duplicates_and_renames_taken_ids(tmp_path: Path) -> None:
    """Same URL as a configured feed (http/https, trailing slash), or twice in the file:
    skipped.  A new URL under a taken id gets a suffix."""
    config = write_config(tmp_path)
    source = tmp_path / "dups.opml"
    source.write_text(opml([
        outline("Wire copy", "http://NEWS.example.org/wire.xml/"),
        outline("Desk", "https://desk.example.net/feed"),
        outline("New one", "https://new.example.com/rss"),
        outline("New again", "https://new.example.com/rss#top"),
        '<outline text="x" xmlUrl="https://other.example.com/rss" id="wire"/>',
    ]), encoding="utf-8")
    result = ingest("feeds", "import", str(source), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "2 imported into" in result.stdout
    assert "2 already present, 1 listed twice, 0 invalid" in result.stdout
    assert "http://NEWS.example.org/wire.xml/ is configured already as wire" in result.stdout
    assert re.search(r"https://new.example.com/rss#top is listed before, on line \d+",
                     result.stdout)
    feeds = {f.id: f.url for f in load_config(config).all_feeds()}
    renamed = [fid for fid in feeds if fid.startswith("wire-")]
    assert len(renamed) == 1 and feeds[renamed[0]] == "https://other.example.com/rss"
    assert f"id 'wire' is taken by another feed: imported as '{renamed[0]}'" in result.stdout
    assert feeds["new-one"] == "https://new.example.com/rss"
    assert len(feeds) == 4


def test_import_dry_run_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "one.opml"
    source.write_text(opml([outline("One", "https://one.example.com/rss")]), encoding="utf-8")
    before = (tmp_path / "feeds.yaml").read_bytes()
    result = ingest("feeds", "import", str(source), "--dry-run", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "1 would be imported into" in result.stdout
    assert (tmp_path / "feeds.yaml").read_bytes() == before


def test_import_of_a_yaml_list_keeps_env_references(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A YAML list is imported with its options, and a ${VAR} header stays a reference."""
    monkeypatch.setenv("INGEST_TEST_TOKEN", "tok-from-env")
    config = write_config(tmp_path)
    source = tmp_path / "more.yaml"
    source.write_text("feeds:\n  - id: extra\n    url: https://extra.example.com/rss\n"
                      "    interval: 1h\n    headers: {X-Key: '${INGEST_TEST_TOKEN}'}\n"
                      "  - {id: Bad, url: 'https://bad.example.com/'}\n", encoding="utf-8")
    bad = ingest("feeds", "import", str(source), "--config", str(config))
    assert bad.exit_code == 2
    assert f"{source}:6: feeds.1.id: Value error, use lowercase" in bad.stderr

    result = ingest("feeds", "import", str(source), "--skip-invalid", "--config", str(config))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "feeds.yaml").read_text(encoding="utf-8")
    assert '"X-Key": "${INGEST_TEST_TOKEN}"' in text and "tok-from-env" not in text
    extra = {f.id: f for f in load_config(config).all_feeds()}["extra"]
    assert extra.headers == (("X-Key", "tok-from-env"),) and extra.interval_s == 3600.0


def test_import_into_a_new_list_prints_the_config_line(tmp_path: Path) -> None:
    """No YAML feed file configured: feeds.yaml is created beside the config and the line
    to add is printed (the config, with its comments, is left alone)."""
    config = write_config(tmp_path, extra="", feeds=None)
    before = config.read_text(encoding="utf-8")
    source = tmp_path / "one.opml"
    source.write_text(opml([outline("One", "https://one.example.com/rss")]), encoding="utf-8")
    result = ingest("feeds", "import", str(source), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"note: {config} does not read feeds.yaml yet: add this line to it\n" \
           "  feed_files: [feeds.yaml]\n" in result.stdout
    assert config.read_text(encoding="utf-8") == before
    with config.open("a", encoding="utf-8") as fh:
        fh.write("feed_files: [feeds.yaml]\n")
    assert [f.id for f in load_config(config).all_feeds()] == ["one"]


def test_import_refuses_an_opml_target(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "one.opml"
    source.write_text(opml([outline("One", "https://one.example.com/rss")]), encoding="utf-8")
    result = ingest("feeds", "import", str(source), "--into", str(tmp_path / "x.opml"),
                    "--config", str(config))
    assert result.exit_code == 2 and "YAML list" in result.stderr


def test_import_of_a_broken_opml_file_names_the_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "broken.opml"
    source.write_text('<opml version="2.0">\n<body>\n<outline xmlUrl="x">\n</body>\n',
                      encoding="utf-8")
    result = ingest("feeds", "import", str(source), "--config", str(config))
    assert result.exit_code == 2
    assert f"{source}:4: not a readable OPML file" in result.stderr


# -- export ---------------------------------------------------------------------------------

ODD_FEED = """\
feeds:
  - id: odd
    url: "https://odd.example.com/a?b=1&c=2"
    title: "Quotes \\" & <tags> ü"
    tags: [a, ü]
"""


@pytest.mark.parametrize("fmt", ["opml", "yaml"])
def test_export_then_import_gives_the_same_feeds(tmp_path: Path, fmt: str) -> None:
    """Export, then import into an empty list: the same ids, URLs, titles and tags (and with
    YAML, every option but headers)."""
    first = tmp_path / "first"
    first.mkdir()
    config = write_config(first, "feed_files: [feeds.yaml]\n" + ODD_FEED)
    original = load_config(config).all_feeds()
    assert original[0].title == 'Quotes " & <tags> ü'
    exported = first / f"out.{fmt}"
    result = ingest("feeds", "export", "--format", fmt, "--output", str(exported),
                    "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"{len(original)} feeds written to {exported}" in result.stderr
    if fmt == "opml":
        assert "OPML has no place for enabled, fulltext, headers, interval, min_interval" \
            in result.stderr

    second = tmp_path / "second"
    second.mkdir()
    target = write_config(second, feeds="feeds: []\n")
    imported = ingest("feeds", "import", str(exported), "--config", str(target))
    assert imported.exit_code == 0, imported.output
    assert f"{len(original)} imported" in imported.stdout
    back = load_config(target).all_feeds()

    def key(f: Feed) -> tuple[str, str, str, tuple[str, ...]]:
        return f.id, f.url, f.title, f.tags

    assert [key(f) for f in back] == [key(f) for f in original]
    if fmt == "yaml":
        assert back == [replace(f, headers=()) for f in original]


def test_opml_text_that_looks_like_an_env_reference_stays_text(tmp_path: Path) -> None:
    """An OPML title holding ``${HOME}`` is imported as that text, not interpolated."""
    config = write_config(tmp_path)
    source = tmp_path / "odd.opml"
    source.write_text(opml([outline("Cost ${HOME} now", "https://odd.example.com/rss")]),
                      encoding="utf-8")
    assert ingest("feeds", "import", str(source), "--config", str(config)).exit_code == 0
    titles = {f.id: f.title for f in load_config(config).all_feeds()}
    assert titles["cost-home-now"] == "Cost ${HOME} now"


def test_export_to_stdout(tmp_path: Path) -> None:
    """OPML 2.0 on stdout by default, with id and category attributes."""
    config = write_config(tmp_path)
    result = ingest("feeds", "export", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<opml "
                                    'version="2.0">')
    assert ('<outline type="rss" text="Example wire" title="Example wire" '
            'xmlUrl="https://news.example.org/wire.xml" id="wire" category="world,wire"/>'
            in result.stdout)


# -- URLs the config refuses ----------------------------------------------------------------


def test_password_in_a_feed_url_is_refused_with_advice(tmp_path: Path) -> None:
    """A password in a feed URL (config or YAML list) is a located error with advice,
    and the error does not repeat the password."""
    config = write_config(tmp_path, extra="feeds:\n  - id: secret\n"
                          "    url: https://bob:hunter2@news.example.com/rss\n", feeds=None)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert f"{config}:6: feeds.0.url: " in message
    assert "put credentials in headers: {Authorization: ...}" in message
    assert "hunter2" not in message

    listed = write_config(tmp_path, feeds="feeds:\n  - id: secret\n"
                          "    url: https://bob:hunter2@news.example.com/rss\n")
    with pytest.raises(ConfigError, match=r"feeds\.yaml:3: feeds\.0\.url: .*holds a password"):
        load_config(listed).all_feeds()


def test_feed_url_schemes(tmp_path: Path) -> None:
    """http(s), file: and plain paths are feeds; ftp: is a located error."""
    feeds = ("feeds:\n  - {id: a, url: 'https://a.example.com/rss'}\n"
             "  - {id: b, url: 'HTTP://b.example.com/rss'}\n"
             "  - {id: c, url: 'file:///srv/feeds/c.xml'}\n"
             "  - {id: d, url: 'feeds/d.xml'}\n"
             "  - {id: e, url: 'https://user@e.example.com/rss'}\n")
    config = write_config(tmp_path, extra=feeds, feeds=None)
    assert [f.id for f in load_config(config).all_feeds()] == ["a", "b", "c", "d", "e"]
    config.write_text(config.read_text(encoding="utf-8")
                      + "  - {id: f, url: 'ftp://files.example.com/f.xml'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ingest\.yaml:10: feeds\.5\.url: .*ftp: URLs are "
                                          r"not polled; use http://, https://, file://"):
        load_config(config)


def test_opml_feed_file_may_not_name_local_files(tmp_path: Path) -> None:
    """An OPML list in feed_files naming a file: URL or a path is refused, each outline
    located; http(s) outlines alone load."""
    config = write_config(tmp_path, extra="feed_files: [subs.opml]\n", feeds=None)
    subs = tmp_path / "subs.opml"
    subs.write_text(opml([outline("Good", "https://good.example.com/rss"),
                          outline("Passwd", "file:///etc/passwd"),
                          outline("Local", "/srv/feeds/local.xml"),
                          outline("Secret", "https://bob:hunter2@x.example.com/rss")]),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config).all_feeds()
    lines = subs.read_text(encoding="utf-8").splitlines()
    problems = {p.line: p.message for p in caught.value.problems}
    for url, why in (("file:///etc/passwd", "a local file"),
                     ("/srv/feeds/local.xml", "a local file"),
                     ("https://bob:hunter2@x.example.com/rss", "holds a password")):
        line = next(i for i, text in enumerate(lines, 1) if f'xmlUrl="{url}"' in text)
        assert problems[line].startswith(f"xmlUrl: {why}")
    assert len(problems) == 3
    assert all(p.file == str(subs) for p in caught.value.problems)
    subs.write_text(opml([outline("Good", "https://good.example.com/rss")]), encoding="utf-8")
    assert [f.id for f in load_config(config).all_feeds()] == ["good"]


# -- writing files whole --------------------------------------------------------------------


def test_export_over_a_file_keeps_its_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """Exporting over an existing file replaces it whole with its mode kept."""
    config = write_config(tmp_path)
    out = tmp_path / "out" / "feeds.opml"
    out.parent.mkdir()
    out.write_text("old", encoding="utf-8")
    out.chmod(0o640)
    result = ingest("feeds", "export", "--output", str(out), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<?xml")
    assert out.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in out.parent.iterdir()] == ["feeds.opml"]


def test_write_atomically_check_failure_keeps_the_file(tmp_path: Path) -> None:
    """When the check refuses the new text, the file is unchanged and no temp file stays."""
    target = tmp_path / "list.yaml"
    target.write_text("feeds: []\n", encoding="utf-8")
    seen: list[str] = []

    def refuse(temp: Path) -> None:
        seen.append(temp.read_text(encoding="utf-8"))
        raise ConfigError([])

    with pytest.raises(ConfigError):
        write_atomically(target, "broken", check=refuse)
    assert seen == ["broken"]
    assert target.read_text(encoding="utf-8") == "feeds: []\n"
    assert [p.name for p in tmp_path.iterdir()] == ["list.yaml"]
    write_atomically(tmp_path / "new.yaml", "feeds: []\n")
    assert (tmp_path / "new.yaml").read_text(encoding="utf-8") == "feeds: []\n"
