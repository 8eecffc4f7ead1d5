"""The crypto/finance vocabulary VADER lacks, on VADER's own scale (−4 … +4 per word).

VADER was built from social-media text: "rally", "plunge", "bullish", "liquidated", "delisting" or "outflows" carry no
valence there, and a few words carry the wrong one for markets ("retreat" +0.8, "freeze" +0.2, "fine" +0.8).
Values follow VADER's calibration: ±1 mild ("dips", "edges"), ±2 clear ("rallies", "sues"), ±3 severe ("hacked",
"bankruptcy"). Words are grouped by valence with their inflections written out, because VADER matches exact tokens.

Multi-word expressions ("ETF approval", "rug pull", "all-time high", "drops lawsuit") cannot be VADER lexicon
entries (VADER splits on whitespace), so `PHRASES` rewrites them into one token before scoring; each such token has
its own valence in `LEXICON`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_GROUPS: tuple[tuple[float, str], ...] = (
    # --- positive ---
    (2.5, "bullish mooning bull_run golden_cross etf_approval all_time_high record_high"),
    (2.2, "surge surges surged surging soar soars soared soaring skyrocket skyrockets skyrocketed"),
    (2.0, "rally rallies rallied rallying breakout breakouts greenlight greenlights greenlit drops_lawsuit"),
    (1.8, "jump jumps jumped rebound rebounds rebounded outperform outperforms outperformed upgrade upgrades"),
    (1.8, "upgraded inflows inflow approve moon ath"),
    (1.6, "gained recover recovers recovered recovery climb climbs climbed climbing beats beat adoption"),
    (1.4, "rise rises rising rose highs partnership partnerships accumulation accumulate accumulating"),
    (1.4, "buyback buybacks lift lifts lifted boosting strengthens strengthened short_squeeze"),
    (1.2, "halving listing listings pump pumps pumped hodl edges_higher raises expands expanded"),
    (1.2, "beating doubles doubled"),  # "beating estimates": VADER reads "beating" as violence (−2.0)
    # --- negative ---
    (-3.2, "bankruptcy bankruptcies insolvency insolvent chapter_11 rug_pull rugpull rugged exit_scam ponzi"),
    (-2.8, "hack hacks hacker hackers exploit exploits exploited exploiter plummet plummets plummeted"),
    (-2.8, "plummeting crash crashes crashed crashing depeg depegs depegged collapse collapses collapsed"),
    (-2.8, "indictment indicted theft rekt"),
    (-2.5, "bearish plunge plunges plunged plunging liquidated delist delists delisted delisting drained"),
    (-2.5, "sec_lawsuit breach outage outages capitulation chain_halt"),
    (-2.2, "tumble tumbles tumbled tumbling slump slumps slumped selloff sell-off sell-offs rout sues sued"),
    (-2.2, "lawsuit crackdown bans fined sanctions sanctioned laundering contagion dump dumps dumped dumping"),
    (-2.2, "bull_trap death_cross freezes frozen halts halted halting wiped"),
    (-2.0, "liquidation liquidations sink sinks sank sinking probe subpoena downgrade downgrades downgraded"),
    (-2.0, "outflows outflow fud layoffs unlock unlocks vulnerability bug bugs"),
    (-1.6, "fall falls fell falling drops dropped decline declines declined slide slides slid sliding"),
    (-1.6, "investigation underperform underperforms underperformed weigh weighs weighed selling_pressure"),
    (-1.4, "slip slips slipped retreat retreats retreated erases erased wipes delays delayed postpone"),
    (-1.4, "postponed squeezed bubble halves halved"),
    (-1.0, "dip dips dipped pares pared edges_lower lower volatile"),
)

LEXICON: Mapping[str, float] = {word: valence for valence, words in _GROUPS for word in words.split()}
"""Token -> valence, added over VADER's lexicon (overriding it where markets use a word differently)."""

# Ordered: longer expressions first, so "SEC lawsuit" is not read as "lawsuit" alone. Each pattern is matched
# case-insensitively on word boundaries.
PHRASES: tuple[tuple[str, str], ...] = (
    (r"all[- ]time[- ]highs?", "all_time_high"),
    (r"record[- ]highs?", "record_high"),
    (r"(?:spot\s+)?(?:bitcoin\s+|ether\s+|ethereum\s+|solana\s+)?etfs?\s+approvals?", "etf_approval"),
    (r"drops?\s+(?:its\s+|the\s+)?(?:lawsuit|case|charges|probe|investigation)", "drops_lawsuit"),
    (r"sec\s+(?:lawsuit|suit|sues|charges)", "sec_lawsuit"),
    (r"chapter\s+11", "chapter_11"),
    (r"rug[- ]pulls?", "rug_pull"),
    (r"exit\s+scams?", "exit_scam"),
    (r"bull\s+run", "bull_run"),
    (r"bull\s+trap", "bull_trap"),
    (r"golden\s+cross", "golden_cross"),
    (r"death\s+cross", "death_cross"),
    (r"short\s+squeeze", "short_squeeze"),
    (r"selling\s+pressure", "selling_pressure"),
    (r"chain\s+halt", "chain_halt"),
    (r"edges?\s+higher", "edges_higher"),
    (r"edges?\s+lower", "edges_lower"),
)

_PHRASE_RE = re.compile(
    "|".join(f"(?P<p{i}>(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9]))" for i, (pattern, _) in enumerate(PHRASES)),
    re.IGNORECASE,
)
_PHRASE_TOKENS = {f"p{i}": token for i, (_, token) in enumerate(PHRASES)}


def join_phrases(text: str) -> str:
    """The text with every known multi-word expression replaced by its single lexicon token."""
    return _PHRASE_RE.sub(lambda m: _PHRASE_TOKENS[m.lastgroup or ""], text)
