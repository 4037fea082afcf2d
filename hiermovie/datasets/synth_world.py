"""The synthetic movie world: actors, scenes, verbs as motions, and scripts with known truth.

A clip is a script of 2-s events. Each event has a verb, an agent (Arg0) and a patient (Arg1)
drawn from the clip's cast, a scene (AScn) and a screen side (ALoc). What a verb *looks like*
is its motion; four verbs share a motion with another verb and are told apart only by context:

    celebrate / sulk   (agent bobs in place)   celebrate iff the previous event is a "win"
    wait / hide        (agent stands still)    wait iff the next event is an "action"

By default plain verbs are drawn independently. With `p_follow` > 0 they form a Markov chain
(as events in a movie do: a push is often followed by a fall): with probability `p_follow` the
next plain verb is one of the previous one's two successors (`SUCCESSORS`), else any plain
verb; every verb has two predecessors, so all plain verbs stay equally frequent and both
labels of each look-alike pair stay balanced.

Event relations (w.r.t. the central event Ev3) follow from both events: NoRel when they share
no actor, else by the earlier event's verb: Causes after a forceful verb, Reaction To after a
moving-toward verb, Enables otherwise. Long-form (LVU-style) labels are statistics of whole
clips (see `long_labels`).

The story world (`STORY`) adds what a movie carries from one event to the next and what a
single segment often fails to show: a plain event is hidden with probability `p_hidden` (a
cut-away: a panel covers the action, only the scene shows, never two in a row), so its verb
and actors are only in its neighbours (the chain of verbs, and `p_turn`: the next event's agent
is the previous event's patient). Every event falls in one group (`event_group`): "plain"
(seen), "predictable" (hidden: predictable from the neighbours' pixels) or "label_only" (a
look-alike verb: the rule that names it exists only in the labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hiermovie.config import opt
from hiermovie.datasets.vidsitu import RELATIONS  # noqa: F401 (the world's relation names)

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 230),
           "yellow": (235, 215, 40), "white": (240, 240, 240), "purple": (160, 60, 200)}
SHAPES = ("circle", "square", "triangle", "diamond")
SCENES = ("office", "airport", "school", "hotel", "prison", "restaurant")

# verb -> motion it is rendered with
VERBS = {
    "approach": "approach", "retreat": "retreat", "orbit": "orbit", "jump": "jump",
    "shake": "shake", "push": "push", "chase": "chase", "swap": "swap", "grow": "grow",
    "fall": "fall", "celebrate": "bob", "sulk": "bob", "wait": "still", "hide": "still",
}
VERB_LIST = tuple(VERBS)
MOTIONS = tuple(dict.fromkeys(VERBS.values()))
PLAIN_VERBS = tuple(v for v in VERBS if list(VERBS.values()).count(VERBS[v]) == 1)
CONTEXT_VERBS = ("celebrate", "sulk", "wait", "hide")
WIN = {"push", "chase", "approach", "orbit", "swap"}  # half the plain verbs: labels balance
ACTION = {"approach", "chase", "push", "jump", "fall"}
FORCE = {"push", "chase", "swap"}
TOWARD = {"approach", "orbit", "shake"}
SUCCESSORS = {v: (PLAIN_VERBS[(i + 1) % len(PLAIN_VERBS)],
                  PLAIN_VERBS[(i + 3) % len(PLAIN_VERBS)]) for i, v in enumerate(PLAIN_VERBS)}
# what a careless annotator may say instead
CONFUSABLE = {"approach": "chase", "chase": "approach", "retreat": "fall", "fall": "jump",
              "jump": "fall", "orbit": "shake", "shake": "orbit", "push": "chase",
              "swap": "push", "grow": "jump", "celebrate": "jump", "sulk": "wait",
              "wait": "hide", "hide": "wait"}


@dataclass
class Event:
    verb: str
    agent: str  # phrase, e.g. "red circle"
    patient: str
    scene: str
    flip: bool  # mirrored left-right
    side: str  # ALoc: where the agent mostly is: "left side" / "right side"
    hidden: bool = False  # a cut-away: the action is covered, only the scene shows


@dataclass(frozen=True)
class World:
    """What scripts contain. The defaults are the original world of independent events; with
    p_follow, p_hidden and p_turn 0 a script draws the same random numbers as before these
    existed."""

    p_context: float = opt(0.35, "chance that an event is a look-alike verb whose label only "
                           "its neighbours decide")
    p_follow: float = opt(0.0, "chance that a plain verb is one of its predecessor's two "
                          "successors (0 = independent events)")
    p_hidden: float = opt(0.0, "chance that a plain event is hidden (a cut-away: only its "
                          "neighbours show its verb and actors)")
    p_turn: float = opt(0.0, "chance that an event's agent is the previous event's patient. "
                        "The story world: p_follow 0.8, p_hidden 0.3, p_turn 0.7 "
                        "(docs/synthetic-benchmark.md)")

    def __post_init__(self) -> None:
        for name in ("p_context", "p_follow", "p_hidden", "p_turn"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be in [0, 1]")


GROUPS = ("plain", "predictable", "label_only")
ORIGINAL = World()
STORY = World(p_follow=0.8, p_hidden=0.3, p_turn=0.7)


def event_group(e: Event) -> str:
    if e.verb in CONTEXT_VERBS:
        return "label_only"
    return "predictable" if e.hidden else "plain"


def actor_phrase(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def sample_cast(rng: np.random.Generator, n: int = 4) -> list[str]:
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    shapes = rng.choice(SHAPES, size=n, replace=True)
    return [actor_phrase(c, s) for c, s in zip(colours, shapes, strict=True)]


def context_label(motion: str, prev: str | None, nxt: str | None) -> str:
    if motion == "bob":
        return "celebrate" if prev in WIN else "sulk"
    return "wait" if nxt in ACTION else "hide"


def sample_script(rng: np.random.Generator, n_events: int = 5, cast: list[str] | None = None,
                  scenes: list[str] | None = None, world: World = ORIGINAL) -> list[Event]:
    p_context, p_follow = world.p_context, world.p_follow
    cast = cast or sample_cast(rng)
    verbs = [str(rng.choice(PLAIN_VERBS))]
    for _ in range(n_events - 1):
        follow = p_follow > 0 and rng.random() < p_follow  # p_follow 0: the rng as before
        verbs.append(str(rng.choice(SUCCESSORS[verbs[-1]] if follow else PLAIN_VERBS)))
    motions: list[str | None] = [None] * n_events
    for i in range(n_events):  # some events become context-dependent, never two in a row
        if rng.random() < p_context and (i == 0 or motions[i - 1] is None):
            can_bob, can_still = i > 0, i < n_events - 1
            options = ["bob"] * can_bob + ["still"] * can_still
            if options:
                motions[i] = str(rng.choice(options))
    for i in range(n_events):  # labels from the (plain) neighbours
        if motions[i] is not None:
            prev = verbs[i - 1] if i > 0 else None
            nxt = verbs[i + 1] if i + 1 < n_events else None
            verbs[i] = context_label(motions[i], prev, nxt)
    scene_list = scenes or [str(rng.choice(SCENES))] * n_events
    hidden = [False] * n_events
    if world.p_hidden > 0:
        for i in range(n_events):
            if motions[i] is None and not (i and hidden[i - 1]):
                hidden[i] = bool(rng.random() < world.p_hidden)
    events = []
    for i, verb in enumerate(verbs):
        a, p = rng.choice(len(cast), size=2, replace=False)
        if world.p_turn > 0 and i and rng.random() < world.p_turn:  # the patient answers
            a = cast.index(events[-1].patient)
            p = int(rng.choice([j for j in range(len(cast)) if j != a]))
        flip = bool(rng.random() < 0.5)
        events.append(Event(verb, cast[a], cast[p], scene_list[i], flip,
                            "right side" if flip else "left side", hidden[i]))
    return events


def relation(ev: Event, ev3: Event, before: bool) -> str:
    """Label of event `ev` relative to the central event (Ev3)."""
    if not ({ev.agent, ev.patient} & {ev3.agent, ev3.patient}):
        return "NoRel"
    earlier = ev if before else ev3
    if earlier.verb in FORCE:
        return "Causes"
    if earlier.verb in TOWARD:
        return "Reaction To"
    return "Enables"


# --- long-form (LVU-style) labels -----------------------------------------------------------

LVU_CLASSES = {
    "relationship": ("friend", "ex-boyfriend/girlfriend", "husband-wife", "boyfriend-girlfriend"),
    "way_speaking": ("explains", "confronts", "discuss", "teaches", "threatens"),
    "scene": SCENES,
    "director": tuple(f"nm{1000 + i:07d}" for i in range(10)),
    "writer": (*(f"nm{2000 + i:07d}" for i in range(9)), "\\N"),
    "year": tuple(str(y) for y in range(1930, 2020, 10)),
    "genre": ("Comedy", "Action_Crime_Adventure", "Romance", "Thriller_Horror"),
}
YEAR_TINTS = [(40 - 10 * i, 20 - 5 * i, -20 + 5 * i) for i in range(9)]
VERB_GROUPS = (("approach", "orbit", "celebrate"), ("push", "chase", "shake"),
               ("swap", "grow", "wait"), ("retreat", "fall", "hide", "sulk", "jump"))


def long_labels(events: list[Event], cast: list[str], year: int,
                rng: np.random.Generator) -> dict[str, object]:
    """Clip-level labels; each depends on many events (counts over the whole clip)."""
    verbs = [e.verb for e in events]
    group_counts = np.array([sum(v in g for v in verbs) for g in VERB_GROUPS])
    scenes = [e.scene for e in events]
    verb_counts = np.array([verbs.count(v) for v in VERB_LIST])
    fast = np.mean([v in ("shake", "chase", "jump", "fall", "push") for v in verbs])
    positive = np.mean([v in ("celebrate", "approach", "orbit", "grow") for v in verbs])
    colour_idx = list(COLOURS).index(cast[0].split()[0])
    shape_idx = SHAPES.index(cast[0].split()[1])
    likes = int(rng.integers(200, 2000))
    ratio = 0.80 + 0.18 * positive  # like ratio in [0.8, 0.98]
    return {
        "relationship": int(np.argmax(group_counts)),
        "way_speaking": int(np.argmax(verb_counts[:10]) % 5),
        "scene": SCENES.index(max(scenes, key=scenes.count)),  # ties: the first seen
        "director": (colour_idx + 6 * (shape_idx % 2)) % 10,
        "writer": int(np.argmax(verb_counts)) % 10,
        "year": year,
        "genre": int(min(3, fast * 8)),
        "like_ratio": (likes, max(1, int(round(likes * (1 - ratio) / ratio)))),
        "view_count": int(np.exp(11.76 + 3.0 * (len(set(verbs)) / len(VERB_LIST) - 0.5)
                                 + rng.normal(0, 0.1))),
    }


# --- what neighbours can add (the ceiling, measured on ground truth) ---------------------------

def neighbour_ceiling(world: World, scripts: int = 4000, seed: int = 0) -> dict[str, dict]:
    """Verb accuracy per event group of the best guess from perfect perception of the event's
    own segment alone, and of it plus its two adjacent segments: the most frequent verb for what
    they show (motion, or hidden), counted on two thirds of `scripts` and scored on the rest."""
    from collections import Counter, defaultdict

    rng = np.random.default_rng(seed)
    rows = []  # (own, prev, next) seen, verb, group
    for _ in range(scripts):
        s = sample_script(rng, world=world)
        seen = ["hidden" if e.hidden else VERBS[e.verb] for e in s] + [None]
        rows += [((seen[k], seen[k - 1] if k else None, seen[k + 1]), e.verb, event_group(e))
                 for k, e in enumerate(s)]
    cut = len(rows) * 2 // 3
    table: dict = defaultdict(Counter)
    for k, verb, _ in rows[:cut]:
        table[k[:1]][verb] += 1
        table[k][verb] += 1
    out: dict[str, dict] = {}
    for name, width in (("own", 1), ("with_neighbours", 3)):
        right: dict = defaultdict(list)
        for k, verb, group in rows[cut:]:
            seen = table.get(k[:width]) or table[k[:1]]  # unseen context: the own guess
            right[group].append(seen.most_common(1)[0][0] == verb)
        out[name] = {g: float(np.mean(right[g])) for g in GROUPS if right[g]}
    return out
