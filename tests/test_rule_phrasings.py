"""The shipped rules on stories written in many phrasings (our own sentences, not a corpus)."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.nlp.pipeline import Analyzer
from ingest.rules.load import RuleSet
from ingest.rules.match import match_rule

ON = date(2025, 6, 1)

CONTACT_YES = [
    "Pentagon chief Pete Hegseth held a video call with Chinese Defence Minister Dong Jun.",
    "Ukraine's defence minister Rustem Umerov spoke with his British counterpart John Healey.",
    "The defence ministers of Japan and Australia held talks in Tokyo on Monday.",
    "Russian Defence Minister Andrei Belousov received his Belarusian counterpart Viktor "
    "Khrenin in Moscow.",
    "In a phone call on Tuesday, Germany's Boris Pistorius and France's Sebastien Lecornu "
    "discussed air defence.",
    "US Secretary of War Pete Hegseth spoke by phone with Russian Defence Minister Andrei "
    "Belousov.",
    "Britain's defence secretary met his Ukrainian opposite number in Kyiv.",
    "Defence Minister Richard Marles hosted his Japanese counterpart Gen Nakatani in Geelong.",
    "Indian Defence Minister Rajnath Singh and US Defense Secretary Pete Hegseth held talks "
    "in New Delhi.",
    "Talks between the Turkish and Greek defence ministers were held in Athens.",
    "Hegseth calls Chinese counterpart for first time since taking office.",
    "Belousov held a telephone conversation with the US Secretary of Defense, the Russian "
    "Defence Ministry said.",
    "Poland's Minister of National Defence Wladyslaw Kosiniak-Kamysz met Lithuania's defence "
    "minister in Vilnius.",
    "Israeli Defense Minister Israel Katz spoke with U.S. Defense Secretary Pete Hegseth on "
    "Sunday night.",
    "Hegseth, Belousov Discuss Ukraine In Rare Phone Call",
    "Shoigu held phone calls with the defence ministers of France, Britain and Turkey.",
]

CONTACT_NO = [
    "Defence Minister Boris Pistorius said Germany would buy more tanks.",
    "Russia's defence ministry said it had shot down 20 drones overnight.",
    "Foreign Minister Sergei Lavrov met US Secretary of State Marco Rubio in Riyadh.",
    "Britain's health secretary called his French counterpart about drug shortages.",
    "Former defence minister Sergei Shoigu met Chinese officials in Beijing.",
    "Deputy Defence Minister Alexander Fomin held talks with Turkish officials.",
    "Ukraine's defence minister criticised remarks by his Russian counterpart.",
    "The US defense secretary said he had no plans to talk to the Russian defence minister.",
    "Defense Secretary Pete Hegseth met troops at Fort Bragg on Friday.",
    "Austin, Texas hosted a meeting of drone makers attended by the city's mayor.",
    "Two former defence ministers, one British and one French, wrote a joint article.",
]

MISSILE_YES = [
    "The Pentagon will station Typhon launchers in Japan next year.",
    "NATO allies agreed to deploy additional Patriot batteries to Poland.",
    "Beijing has deployed DF-26 anti-ship missiles on Hainan island, satellite images show.",
    "Moscow said it would position nuclear-capable Iskander missiles in Kaliningrad.",
    "Washington announced plans to base intermediate-range missiles in Germany from 2026.",
    "The deployment of US long-range missiles in Germany will begin in 2026.",
    "Japan plans to deploy upgraded Type-12 surface-to-ship missiles on its southwestern "
    "islands.",
    "Russia is deploying Oreshnik intermediate-range ballistic missiles to Belarus.",
    "South Korea and the US agreed to redeploy THAAD interceptors near Seongju.",
    "Iran has positioned missile launchers near the Strait of Hormuz.",
    "A Dark Eagle hypersonic battery will be fielded in Australia during the exercise.",
    "Germany will host US cruise missiles and hypersonic weapons from 2026, the government "
    "confirmed.",
    "U.S. to Begin Deploying Long-Range Missiles in Germany in 2026",
    "Putin says first Russian tactical nuclear weapons have been moved to Belarus",
]

MISSILE_NO = [
    "Russia launched 40 missiles at Ukrainian cities overnight.",
    "Iran test-fired a new ballistic missile on Sunday.",
    "The army deployed troops to the border after clashes.",
    "Ukraine used ATACMS missiles to strike an airfield in Crimea.",
    "Officials denied that missiles had been deployed in the region.",
    "Russia said it has no plans to deploy missiles in Cuba.",
    "The Patriots beat the Jets 24-10 on Sunday.",
    "A missile hit a railway station in Kharkiv, killing four.",
    "SpaceX deployed 22 Starlink satellites after launch.",
    "Austin, Texas hosted a defence technology expo where missile makers showed new guidance "
    "kits.",
    "Russia fired Kinzhal hypersonic missiles at Kyiv overnight, Ukraine's air force said.",
    "Lockheed won a $4.5 billion contract to produce more PAC-3 missile interceptors.",
]


def fires(analyzer: Analyzer, ruleset: RuleSet, rule_id: str, text: str) -> bool:
    rule = ruleset.get(rule_id)
    assert rule is not None
    return match_rule(rule, analyzer.analyze([text], [ON])[0], "-") is not None


@pytest.mark.parametrize("text", CONTACT_YES)
def test_contact_fires(analyzer: Analyzer, ruleset: RuleSet, text: str) -> None:
    """Two countries' defence ministers in contact, in varied wording, alert."""
    assert fires(analyzer, ruleset, "defence-minister-contact", text)


@pytest.mark.parametrize("text", CONTACT_NO)
def test_contact_quiet(analyzer: Analyzer, ruleset: RuleSet, text: str) -> None:
    """One minister, other ministers, former or deputy ministers, or no contact: no alert."""
    assert not fires(analyzer, ruleset, "defence-minister-contact", text)


@pytest.mark.parametrize("text", MISSILE_YES)
def test_missile_fires(analyzer: Analyzer, ruleset: RuleSet, text: str) -> None:
    """Missile deployments and stationing, in varied wording, alert."""
    assert fires(analyzer, ruleset, "missile-deployment", text)


@pytest.mark.parametrize("text", MISSILE_NO)
def test_missile_quiet(analyzer: Analyzer, ruleset: RuleSet, text: str) -> None:
    """Strikes, tests, denials and unrelated deployments do not alert."""
    assert not fires(analyzer, ruleset, "missile-deployment", text)
