"""Stories (pure): MinHash fingerprints of entry texts and grouping entries into stories."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

from ingest.stories.cluster import (
    MIN_SIGNATURE_WORDS,
    StoryCandidate,
    StoryInput,
    assign_stories,
)
from ingest.stories.minhash import (
    NUM_PERM,
    band_layout,
    fingerprint,
    shingles,
    similarity,
)

THRESHOLD = 0.5  # the configured default (StorySettings.similarity)

WIRE = ("North Korea fired two short-range ballistic missiles into the sea off its east coast "
        "on Thursday, South Korea's military said, the latest in a series of launches this "
        "year. The Joint Chiefs of Staff said the missiles were launched from the Pyongyang "
        "area at about 7:20 a.m. and flew roughly 600 kilometres before splashing down outside "
        "Japan's exclusive economic zone. Japan's defence ministry said it was analysing the "
        "launch and had lodged a protest through diplomatic channels in Beijing. The United "
        "States said it was consulting closely with its allies and that its commitment to "
        "their defence remained ironclad.")

# One wire story as two outlets print it: own headline, byline and boilerplate, a few words
# of the body changed by the copy desk.
REUTERS = ("North Korea fires two ballistic missiles\n\nBy Hyonhee Shin, Reuters\n\n" + WIRE
           + "\n\nReporting by Hyonhee Shin; Editing by Ed Davies. Our Standards: The Thomson "
           "Reuters Trust Principles.")
AP = ("N. Korea launches missiles toward sea, Seoul says\n\nSEOUL (AP) — "
      + WIRE.replace("fired", "launched").replace("roughly", "about")
      .replace("the latest", "its latest").replace("ironclad", "unwavering")
      + "\n\nCopyright 2024 The Associated Press. All rights reserved. This material may not "
      "be published, broadcast, rewritten or redistributed.")

# Another missile story, same topic and much of the same vocabulary, different event.
SARMAT = ("Russia test-fires Sarmat intercontinental missile\n\nRussia said on Friday it had "
          "test-fired its new Sarmat intercontinental ballistic missile from the Plesetsk "
          "cosmodrome in the north of the country, with the dummy warheads reaching their "
          "targets on the Kura test range in Kamchatka. President Vladimir Putin called the "
          "missile a truly unique weapon that would give pause to those trying to threaten "
          "Russia. The Pentagon said it had been notified in advance under arms control "
          "arrangements and did not consider the test a threat to the United States.")
# A later North Korean launch told in the same wire phrasing: still another event.
NK_LATER = ("North Korea fires cruise missiles off west coast\n\nNorth Korea fired several "
            "cruise missiles over the Yellow Sea on Sunday morning, South Korea's military "
            "said, days after Pyongyang vowed to bolster its nuclear deterrent. The launches "
            "came as US and South Korean forces wrapped up a week of joint air drills, which "
            "the North calls rehearsals for invasion. Seoul said it had stepped up "
            "surveillance and was sharing information with Washington and Tokyo.")


def item(entry_id: int, text: str, link: str = "") -> StoryInput:
    fp = fingerprint(text, THRESHOLD)
    return StoryInput(entry_id, link, fp.signature, fp.bands, len(text.split()))


def candidate(entry_id: int, story_id: int, text: str, link: str = "") -> StoryCandidate:
    fp = fingerprint(text, THRESHOLD)
    return StoryCandidate(entry_id, story_id, link, fp.signature, fp.bands)


# --- shingles ---------------------------------------------------------------------------

def test_shingles_are_lower_cased_word_trigrams() -> None:
    """Shingles are overlapping three-word sequences of the lower-cased words."""
    assert shingles("The Cat sat ON the mat") == {
        b"the cat sat", b"cat sat on", b"sat on the", b"on the mat"}


def test_shingles_ignore_punctuation_and_spacing() -> None:
    """Punctuation, underscores and line breaks separate words but are not part of them."""
    assert shingles("Missiles -- fired,\n\nSeoul said!") == shingles("missiles fired seoul said")
    assert shingles("a_b c d") == {b"a b c", b"b c d"}


def test_shingles_of_a_short_text_are_its_words() -> None:
    """Fewer than three words: the words themselves; no words: nothing."""
    assert shingles("Missile launch") == {b"missile", b"launch"}
    assert shingles("  ... ") == set()


def test_shingles_keep_non_ascii_words() -> None:
    """Letters outside ASCII are word characters (encoded as UTF-8)."""
    assert shingles("Zürich São Paulo") == {"zürich são paulo".encode()}


# --- fingerprints -----------------------------------------------------------------------

def test_fingerprint_shape() -> None:
    """A signature holds NUM_PERM 32-bit values; there is one signed 64-bit key per band."""
    fp = fingerprint(WIRE, THRESHOLD)
    bands, _rows = band_layout(THRESHOLD)
    assert len(fp.signature) == NUM_PERM * 4
    assert len(fp.bands) == bands
    assert all(-(2 ** 63) <= k < 2 ** 63 for k in fp.bands)
    assert len(set(fp.bands)) == len(fp.bands)  # the band number is part of each key


def test_fingerprint_is_deterministic_across_calls() -> None:
    """The same text gives the same signature bytes and band keys every time."""
    first, second = fingerprint(REUTERS, THRESHOLD), fingerprint(REUTERS, THRESHOLD)
    assert first.signature == second.signature
    assert first.bands == second.bands


def test_fingerprint_is_deterministic_across_processes() -> None:
    """Another interpreter (another hash seed) computes the same bytes: stored rows stay valid."""
    code = ("import sys; from ingest.stories.minhash import fingerprint; "
            "fp = fingerprint(sys.stdin.read(), 0.5); "
            "print(fp.signature.hex()); print(','.join(map(str, fp.bands)))")
    out = subprocess.run([sys.executable, "-c", code], input=AP, capture_output=True,
                         text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.split()
    here = fingerprint(AP, THRESHOLD)
    assert out == [here.signature.hex(), ",".join(map(str, here.bands))]


def test_band_layout_fits_the_signature() -> None:
    """Bands times rows never exceed the permutations; stricter thresholds use longer bands."""
    for threshold in (0.3, 0.5, 0.7, 0.9):
        bands, rows = band_layout(threshold)
        assert bands >= 1 and rows >= 1 and bands * rows <= NUM_PERM
    assert band_layout(0.9)[1] > band_layout(0.3)[1]


def test_band_keys_depend_on_threshold() -> None:
    """The number of band keys follows the layout of the threshold asked for."""
    assert len(fingerprint(WIRE, 0.3).bands) == band_layout(0.3)[0]
    assert len(fingerprint(WIRE, 0.9).bands) == band_layout(0.9)[0]
    assert fingerprint(WIRE, 0.3).signature == fingerprint(WIRE, 0.9).signature


# --- similarity -------------------------------------------------------------------------

def test_similarity_of_identical_and_unrelated_texts() -> None:
    """A text is fully similar to itself and hardly at all to an unrelated one."""
    sig = fingerprint(WIRE, THRESHOLD).signature
    assert similarity(sig, sig) == 1.0
    assert similarity(sig, fingerprint(SARMAT, THRESHOLD).signature) < 0.1


def test_similarity_of_copies_clears_the_threshold() -> None:
    """Two outlets' copies of one wire story estimate above the default threshold."""
    a, b = (fingerprint(t, THRESHOLD).signature for t in (REUTERS, AP))
    assert similarity(a, b) >= THRESHOLD
    assert similarity(a, b) == similarity(b, a)


def test_similarity_estimates_jaccard() -> None:
    """The estimate is close to the true Jaccard similarity of the shingle sets."""
    sa, sb = shingles(REUTERS), shingles(AP)
    true = len(sa & sb) / len(sa | sb)
    estimate = similarity(fingerprint(REUTERS, THRESHOLD).signature,
                          fingerprint(AP, THRESHOLD).signature)
    assert abs(estimate - true) < 0.15


def test_similarity_of_missing_or_mismatched_signatures_is_zero() -> None:
    """An empty signature, or one of another length, is similar to nothing."""
    sig = fingerprint(WIRE, THRESHOLD).signature
    assert similarity(b"", sig) == 0.0
    assert similarity(sig, b"") == 0.0
    assert similarity(sig, sig[:-4]) == 0.0


# --- assign_stories ---------------------------------------------------------------------

def test_copies_in_one_batch_share_a_story() -> None:
    """The second outlet's copy joins the first's story, named by the first entry id."""
    assert assign_stories([item(1, REUTERS), item(2, AP)], [], THRESHOLD) == {1: 1, 2: 1}


def test_different_stories_on_one_topic_stay_apart() -> None:
    """Two different missile stories are two stories, even in wire phrasing."""
    out = assign_stories([item(1, REUTERS), item(2, SARMAT), item(3, NK_LATER)], [], THRESHOLD)
    assert out == {1: 1, 2: 2, 3: 3}


def test_equal_links_join_whatever_the_text() -> None:
    """Entries with one canonical link are one story although their texts differ."""
    link = "https://example.com/nk-launch"
    out = assign_stories([item(1, REUTERS, link), item(2, SARMAT, link)], [], THRESHOLD)
    assert out == {1: 1, 2: 1}


def test_different_links_do_not_prevent_a_text_match() -> None:
    """Copies on different sites (different links) still join by text."""
    out = assign_stories([item(1, REUTERS, "https://a.example/1"),
                          item(2, AP, "https://b.example/2")], [], THRESHOLD)
    assert out == {1: 1, 2: 1}


def test_short_texts_do_not_join_by_text() -> None:
    """Below MIN_SIGNATURE_WORDS words two identical texts are still separate stories."""
    short = "Missile fired, Seoul says"
    assert len(short.split()) < MIN_SIGNATURE_WORDS
    assert assign_stories([item(1, short), item(2, short)], [], THRESHOLD) == {1: 1, 2: 2}


def test_short_texts_join_by_link() -> None:
    """A short text with the same link as an earlier entry joins its story."""
    link = "https://example.com/flash"
    out = assign_stories([item(1, "Missile fired", link), item(2, "Seoul: missile", link)],
                         [], THRESHOLD)
    assert out == {1: 1, 2: 1}


def test_short_text_does_not_join_a_long_candidate_by_text() -> None:
    """A short item is not compared with stored signatures (too little text to judge)."""
    short = "North Korea fires"
    out = assign_stories([item(5, short)], [candidate(1, 1, short)], THRESHOLD)
    assert out == {5: 5}


def test_text_exactly_at_the_word_minimum_joins_by_text() -> None:
    """MIN_SIGNATURE_WORDS words are enough to be compared."""
    text = " ".join(f"word{i}" for i in range(MIN_SIGNATURE_WORDS))
    assert assign_stories([item(1, text), item(2, text)], [], THRESHOLD) == {1: 1, 2: 1}


def test_candidate_from_the_database_is_joined() -> None:
    """A stored entry (with its band keys) lends its story id to a copy."""
    out = assign_stories([item(20, AP)], [candidate(10, 7, REUTERS)], THRESHOLD)
    assert out == {20: 7}


def test_candidate_link_is_joined() -> None:
    """A stored entry with the same canonical link lends its story id."""
    link = "https://example.com/story"
    stored = StoryCandidate(10, 7, link, b"")
    assert assign_stories([item(20, SARMAT, link)], [stored], THRESHOLD) == {20: 7}


def test_candidate_without_bands_is_not_found_by_text() -> None:
    """Candidates are looked up by band key: one stored without bands is not compared."""
    fp = fingerprint(REUTERS, THRESHOLD)
    stored = StoryCandidate(10, 7, "", fp.signature)
    assert assign_stories([item(20, REUTERS)], [stored], THRESHOLD) == {20: 20}


def test_unrelated_candidate_is_not_joined() -> None:
    """A stored entry of another story leaves the item to start its own."""
    out = assign_stories([item(20, SARMAT)], [candidate(10, 7, REUTERS)], THRESHOLD)
    assert out == {20: 20}


def test_batch_item_joins_a_candidate_and_later_items_follow() -> None:
    """An item that joined a stored story passes that story on to later items in the batch."""
    link = "https://example.com/x"
    out = assign_stories([item(20, AP, link), item(21, SARMAT, link)],
                         [candidate(10, 7, REUTERS)], THRESHOLD)
    assert out == {20: 7, 21: 7}


def test_earliest_story_wins_a_tie() -> None:
    """Equally similar candidates of two stories: the lower (earlier) story id wins."""
    for order in ((9, 4), (4, 9)):
        cands = [candidate(100 + s, s, REUTERS) for s in order]
        assert assign_stories([item(200, REUTERS)], cands, THRESHOLD) == {200: 4}


def test_more_similar_story_beats_an_earlier_one() -> None:
    """The tie rule applies to equal scores only: the better match wins."""
    cands = [candidate(100, 4, AP), candidate(101, 9, REUTERS)]
    assert assign_stories([item(200, REUTERS)], cands, THRESHOLD) == {200: 9}


def test_earliest_story_wins_among_candidates_sharing_a_link() -> None:
    """Stored entries of one link in two stories: the lower (earlier) story id wins."""
    link = "https://example.com/same"
    cands = [StoryCandidate(100, 4, link, b""), StoryCandidate(101, 9, link, b"")]
    assert assign_stories([item(200, SARMAT, link)], cands, THRESHOLD) == {200: 4}


def test_threshold_is_respected() -> None:
    """At a threshold above the copies' similarity they no longer join."""
    a, b = fingerprint(REUTERS, 0.95), fingerprint(AP, 0.95)
    items = [StoryInput(1, "", a.signature, a.bands, 100), StoryInput(2, "", b.signature,
                                                                      b.bands, 100)]
    assert assign_stories(items, [], 0.95) == {1: 1, 2: 2}


def test_no_items_no_stories() -> None:
    """An empty batch assigns nothing."""
    assert assign_stories([], [candidate(1, 1, WIRE)], THRESHOLD) == {}
