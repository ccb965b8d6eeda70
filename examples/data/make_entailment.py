"""Generate the bundled sentence-pair (entailment) dataset for the attnflows examples and demo.

Each example is a premise (``text``) and a hypothesis (``text_pair``) built from the
templates and word lists in this file (no text corpus is copied). The label is
``entailment`` (0) or ``contradiction`` (1); no example is neutral. Five phenomena:

* ``negation``: the hypothesis repeats the premise's event with or without "did not" /
  "never" ("The pilot locked the gate on Monday." / "The pilot did not lock the gate.").
* ``antonym``: a state and its opposite ("The soup was very hot." / "The soup was not cold.").
* ``quantifier``: all / every / some / none / no / not all over a group
  ("None of the guests left early." / "Not every guest left early.").
* ``hypernym``: a word and its category, upward in positive sentences and downward under
  negation ("The boy did not buy any fruit." / "The boy did not buy any apples.").
* ``conjunction``: a two-clause premise; the hypothesis is about one of the clauses
  ("The chef cooked the rice, and the door was open." / "The door was closed.").

Labels are checked, not just asserted: every sentence also gets a meaning (a truth function
over a few atoms, such as "the soup's temperature" or "did each of three guests leave"), and
the script enumerates every assignment of the atoms. The premise entails the hypothesis if
the hypothesis is true wherever the premise is; they contradict if no assignment makes both
true. That must give the constructed label, and never "neither" (neutral).

Run ``python make_entailment.py`` to (re)write ``entailment_train.jsonl``,
``entailment_dev.jsonl``, ``entailment_probe.jsonl`` and ``entailment_label_names.json``
next to this file; the output is the same byte for byte on every run. ``--check`` only
verifies that the files on disk are what the script would write; ``--stats`` prints counts
and baselines as Markdown. Standard library only.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dataset_files sits beside this script
import dataset_files  # noqa: E402

SEED = 11
LABEL_NAMES = ["entailment", "contradiction"]
ENTAILMENT, CONTRADICTION = 0, 1
PHENOMENA = ["negation", "antonym", "quantifier", "hypernym", "conjunction"]
FILE_PREFIX = "entailment_"

# Examples per (phenomenon, label) in each split; every split is label-balanced per phenomenon.
SPLIT_SIZES = {"probe": 6, "dev": 40, "train": 200}
# The probe is drawn first so that dev and train can never repeat its pairs.
SPLIT_ORDER = ["probe", "dev", "train"]
SPLIT_SEEDS = {"probe": SEED * 1000 + 1, "dev": SEED * 1000 + 2, "train": SEED * 1000 + 3}
MAX_WORDS = 30  # premise + hypothesis
PROBE_MAX_WORDS = 24  # keeps every probe pair under 40 MiniLM word pieces

# ---------------------------------------------------------------- vocabulary
AGENTS = ["the chef", "the pilot", "the teacher", "the nurse", "the farmer", "the driver", "the student",
          "the guard", "the painter", "the baker", "the doctor", "the waiter", "the old man",
          "the young woman", "the girl", "the boy", "my neighbour", "her brother", "his sister",
          "the manager", "the tourist", "the captain", "the singer", "the mechanic"]

# (past tense, base form, objects): events for negation and conjunction.
EVENTS = [
    ("cooked", "cook", ["the soup", "the rice", "the fish", "the pasta", "dinner"]),
    ("opened", "open", ["the window", "the parcel", "the gate", "the letter", "the box"]),
    ("painted", "paint", ["the fence", "the wall", "the kitchen", "the boat", "the shed"]),
    ("cleaned", "clean", ["the floor", "the car", "the windows", "the oven", "the stairs"]),
    ("read", "read", ["the report", "the book", "the contract", "the menu", "the notice"]),
    ("fixed", "fix", ["the bike", "the roof", "the lamp", "the radio", "the heater"]),
    ("washed", "wash", ["the dishes", "the van", "the shirts", "the dog", "the towels"]),
    ("sold", "sell", ["the house", "the tractor", "the old piano", "the bike", "the boat"]),
    ("locked", "lock", ["the door", "the gate", "the shed", "the safe", "the garage"]),
    ("called", "call", ["the police", "the office", "the hotel", "the bank", "the school"]),
    ("visited", "visit", ["the museum", "the market", "the castle", "the library", "the zoo"]),
    ("won", "win", ["the race", "the match", "the prize", "the game", "the contest"]),
    ("found", "find", ["the keys", "the wallet", "the map", "the ticket", "the receipt"]),
    ("signed", "sign", ["the contract", "the form", "the lease", "the cheque", "the petition"]),
    ("watched", "watch", ["the match", "the film", "the parade", "the news", "the show"]),
    ("moved", "move", ["the table", "the piano", "the sofa", "the boxes", "the bed"]),
]
# (past, base, opposite past, opposite base, objects): outcomes with exactly two ways to go, so
# "did not lose the match" means "won the match".
OPPOSITE_EVENTS = [
    ("won", "win", "lost", "lose", ["the match", "the race", "the final", "the bet", "the election"]),
    ("passed", "pass", "failed", "fail", ["the exam", "the test", "the driving test", "the audition"]),
    ("accepted", "accept", "rejected", "reject", ["the offer", "the plan", "the proposal", "the invitation"]),
    ("remembered", "remember", "forgot", "forget", ["the password", "the address", "the date", "the code"]),
]
TIMES = ["in the morning", "on Monday", "after lunch", "before noon", "last night", "at dawn", "on Friday",
         "this afternoon", "yesterday", "last week", "at midnight", "on Sunday"]

# (adjective, adjective, nouns): contraries leave a middle ground ("warm" is neither hot nor cold),
# contradictories do not ("not open" means "closed").
CONTRARIES = [
    ("hot", "cold", ["soup", "tea", "oven", "water", "coffee", "bath"]),
    ("full", "empty", ["glass", "box", "bus", "jar", "fridge", "car park"]),
    ("clean", "dirty", ["kitchen", "shirt", "floor", "towel", "sink", "carpet"]),
    ("wet", "dry", ["towel", "floor", "grass", "road", "paint", "sand"]),
    ("early", "late", ["train", "bus", "flight", "delivery", "ferry"]),
    ("cheap", "expensive", ["ticket", "hotel", "meal", "dress", "taxi"]),
    ("quiet", "noisy", ["street", "room", "bar", "classroom", "office"]),
    ("heavy", "light", ["bag", "suitcase", "parcel", "crate", "backpack"]),
    ("long", "short", ["meeting", "queue", "film", "speech", "lesson"]),
    ("fast", "slow", ["train", "horse", "boat", "lift", "computer"]),
    ("soft", "hard", ["bed", "pillow", "bread", "cheese", "mattress"]),
    ("bright", "dark", ["room", "hall", "corridor", "attic", "cellar"]),
]
CONTRADICTORIES = [
    ("open", "closed", ["door", "window", "shop", "gate", "bank", "museum"]),
    ("awake", "asleep", ["baby", "guard", "dog", "patient", "puppy"]),
    ("alive", "dead", ["plant", "fish", "tree", "spider", "rose"]),
    ("vacant", "occupied", ["seat", "table", "flat", "bench", "cabin"]),
    ("present", "absent", ["teacher", "manager", "coach", "director", "nurse"]),
]
DEGREES = ["very", "really", "extremely"]
STATE_OPENERS = ["When we arrived, ", "That evening, ", "By then, ", "On Monday, ", "This morning, "]

# (plural, singular) groups and agreement-free past-tense predicates for quantifiers.
GROUPS = [("students", "student"), ("guests", "guest"), ("players", "player"), ("workers", "worker"),
          ("children", "child"), ("passengers", "passenger"), ("runners", "runner"), ("visitors", "visitor"),
          ("members", "member"), ("nurses", "nurse"), ("drivers", "driver"), ("singers", "singer")]
GROUP_PREDICATES = ["left the party", "passed the test", "enjoyed the show", "arrived on time", "signed the form",
                    "voted for the plan", "finished the race", "paid the fee", "wore a hat", "missed the bus",
                    "brought a gift", "asked a question", "liked the food", "took the train",
                    "stayed for dinner", "read the notice"]
# Predicates with a complement: each member does exactly one of the two.
GROUP_PREDICATE_PAIRS = [("passed the test", "failed the test"), ("finished the race", "dropped out of the race"),
                         ("won the game", "lost the game"), ("accepted the offer", "rejected the offer"),
                         ("came to the meeting", "missed the meeting")]
# quantifier -> phrasings; {pl}/{sg} is the group noun.
QUANTIFIERS = {
    "all": ["all of the {pl}", "all the {pl}", "every {sg}", "each of the {pl}"],
    "some": ["some of the {pl}", "some {pl}", "at least one of the {pl}"],
    "none": ["none of the {pl}", "no {sg}", "not one of the {pl}"],
    "not all": ["not all of the {pl}", "not every {sg}"],
}
GROUP_SIZE = 3  # members in the model checker's worlds (so "all" implies "some")

# category -> (hyponyms, (past, base) verbs that fit every hyponym and the category word)
CATEGORIES = {
    "fruit": (["apples", "bananas", "grapes", "pears", "plums", "cherries"],
              [("bought", "buy"), ("ate", "eat"), ("sold", "sell"), ("picked", "pick"), ("ordered", "order")]),
    "vegetables": (["carrots", "onions", "potatoes", "beans", "peppers", "cabbages"],
                   [("bought", "buy"), ("grew", "grow"), ("ate", "eat"), ("sold", "sell"), ("cooked", "cook")]),
    "flowers": (["roses", "tulips", "daisies", "lilies", "orchids"],
                [("bought", "buy"), ("planted", "plant"), ("picked", "pick"), ("painted", "paint"),
                 ("sold", "sell")]),
    "animals": (["dogs", "cats", "horses", "goats", "rabbits", "cows"],
                [("fed", "feed"), ("saw", "see"), ("photographed", "photograph"), ("drew", "draw"),
                 ("counted", "count")]),
    "vehicles": (["trucks", "buses", "vans", "tractors", "motorbikes"],
                 [("saw", "see"), ("drove", "drive"), ("photographed", "photograph"), ("repaired", "repair"),
                  ("washed", "wash")]),
    "tools": (["hammers", "saws", "drills", "screwdrivers", "spanners"],
              [("bought", "buy"), ("sold", "sell"), ("borrowed", "borrow"), ("carried", "carry"),
               ("lost", "lose")]),
    "clothes": (["shirts", "jackets", "socks", "scarves", "sweaters"],
                [("bought", "buy"), ("washed", "wash"), ("sold", "sell"), ("folded", "fold"), ("ironed", "iron")]),
    "furniture": (["chairs", "tables", "sofas", "desks", "beds"],
                  [("bought", "buy"), ("sold", "sell"), ("moved", "move"), ("painted", "paint"),
                   ("carried", "carry")]),
    "musical instruments": (["violins", "drums", "guitars", "flutes", "trumpets"],
                            [("bought", "buy"), ("sold", "sell"), ("carried", "carry"), ("repaired", "repair"),
                             ("played", "play")]),
}
CONJUNCTIONS = [", and ", ", while ", ". "]
NEGATORS = ["not", "never", "none", "no"]

WORD_RE = re.compile(r"[a-z]+")


def words_of(text):
    """Lower-case whole words, in order."""
    return WORD_RE.findall(text.lower())


def sentence_case(text):
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------- meanings
class Clause:
    """A sentence's text, its meaning (world -> bool), the atoms it reads, and its cue words.

    ``atoms`` maps an atom name to its possible values; two clauses about the same thing share
    atom names, so the model checker sees them talk about the same fact.
    """

    def __init__(self, text, meaning, atoms, cues):
        self.text, self.meaning, self.atoms, self.cues = text, meaning, atoms, cues


def event_clause(rng, agent, event, obj, *, negated, time, say_time):
    """``agent`` did (or did not) ``event`` ``obj``: at ``time`` if ``say_time``, else at any time.

    The atoms are "did it at ``time``" and "did it at some other time", so two clauses of one
    example about the same event share them (pass the same ``time`` to both).
    """
    past, base, _objects = event
    key = f"{agent}|{past}|{obj}"
    at_time, at_other = f"{key}@{time}", f"{key}@other"
    atoms = {at_time: (False, True), at_other: (False, True)}
    if negated:
        if not say_time and rng.random() < 0.4:
            verb_phrase, cues = f"never {past} {obj}", ["never", past]
        else:
            verb_phrase, cues = f"did not {base} {obj}", ["not", base]
    else:
        verb_phrase, cues = f"{past} {obj}", [past]
    text = f"{agent} {verb_phrase}" + (f" {time}" if say_time else "")

    def happened(world):
        return world[at_time] if say_time else world[at_time] or world[at_other]

    return Clause(text, (lambda w: not happened(w)) if negated else happened, atoms, cues)


def outcome_clause(agent, outcome, obj, *, opposite, negated):
    """``agent`` won (lost, did not win, did not lose) ``obj``: one atom, "the first verb happened"."""
    past, base, opposite_past, opposite_base, _objects = outcome
    atom = f"{agent}|{past}|{obj}"
    said_past, said_base = (opposite_past, opposite_base) if opposite else (past, base)
    if negated:
        text, cues = f"{agent} did not {said_base} {obj}", ["not", said_base]
    else:
        text, cues = f"{agent} {said_past} {obj}", [said_past]
    positive = negated == opposite  # "won" and "did not lose" say the first verb happened

    def holds(world):
        return world[atom] == positive

    return Clause(text, holds, {atom: (False, True)}, cues)


def state_clause(noun, pair, adjective, *, contradictory, negated=False, degree=None, opener=""):
    """The ``noun`` was (not) (``degree``) ``adjective``; ``pair`` is its two opposite adjectives."""
    first, second = pair
    values = ("A", "B") if contradictory else ("A+", "A", "mid", "B", "B+")
    atom = f"state|{noun}|{first}"
    side = "A" if adjective == first else "B"
    true_values = {side + "+"} if degree else {side, side + "+"}
    cues = (["not"] if negated else []) + ([degree] if degree else []) + [adjective]
    text = f"{opener}the {noun} was {'not ' if negated else ''}{degree + ' ' if degree else ''}{adjective}"
    if contradictory:
        true_values = {side}

    def holds(world):
        return world[atom] in true_values

    return Clause(text, (lambda w: not holds(w)) if negated else holds, {atom: values}, cues)


def quantifier_clause(quantifier, phrasing, group, predicate, *, complement=None):
    """``quantifier`` of ``group`` did ``predicate`` (or its ``complement``, said instead when given)."""
    plural, singular = group
    members = [f"{plural}|{predicate}|{k}" for k in range(GROUP_SIZE)]  # did member k do ``predicate``?
    phrase = phrasing.format(pl=plural, sg=singular)
    said = complement or predicate

    def does(w, m):
        return w[m] != (complement is not None)

    truth = {
        "all": lambda w: all(does(w, m) for m in members),
        "some": lambda w: any(does(w, m) for m in members),
        "none": lambda w: not any(does(w, m) for m in members),
        "not all": lambda w: not all(does(w, m) for m in members),
    }[quantifier]
    cues = [w for w in words_of(phrase) if w not in ("of", "the", plural, singular)]
    if complement is not None:
        cues.append(words_of(complement)[0])
    return Clause(f"{phrase} {said}", truth, {m: (False, True) for m in members}, cues)


def category_clause(rng, agent, verb, category, noun, *, negated):
    """``agent`` ``verb``-ed ``noun`` (a hyponym of ``category`` or the category word itself), or did not."""
    past, base = verb
    hyponyms, _verbs = CATEGORIES[category]
    # Atoms: did the agent do it to the hyponym named in this example, and to some other member?
    atom_named, atom_other = f"{agent}|{past}|{category}|named", f"{agent}|{past}|{category}|other"
    atoms = {atom_named: (False, True), atom_other: (False, True)}
    if noun == category:
        def happened(w):
            return w[atom_named] or w[atom_other]
    else:
        def happened(w):
            return w[atom_named]
    noun_cues = words_of(noun)
    if negated:
        if rng.random() < 0.3:
            text, cues = f"{agent} never {past} any {noun}", ["never", "any", *noun_cues]
        else:
            text, cues = f"{agent} did not {base} any {noun}", ["not", "any", *noun_cues]
        return Clause(text, lambda w: not happened(w), atoms, cues)
    some = "some " if noun == category and rng.random() < 0.5 else ""
    return Clause(f"{agent} {past} {some}{noun}", happened, atoms, [*(["some"] if some else []), *noun_cues])


# ---------------------------------------------------------------- phenomena
# Each maker returns (premise Clause, hypothesis Clause, case name) for the label asked for.
# A case is a way to build a pair; every case of a label gives that label.

def make_negation(rng, label):
    if rng.random() < 0.3:
        return make_outcome_negation(rng, label)
    agent, event = rng.choice(AGENTS), rng.choice(EVENTS)
    obj, time = rng.choice(event[2]), rng.choice(TIMES)
    case = rng.choice({ENTAILMENT: ["pos -> pos, time dropped", "neg -> neg, time added"],
                       CONTRADICTION: ["pos -> neg", "neg -> pos"]}[label])
    premise_negated, premise_time, hypothesis_negated, hypothesis_time = {
        "pos -> pos, time dropped": (False, True, False, False),
        "neg -> neg, time added": (True, False, True, True),
        "pos -> neg": (False, rng.random() < 0.5, True, False),
        "neg -> pos": (True, False, False, rng.random() < 0.5),
    }[case]
    p = event_clause(rng, agent, event, obj, negated=premise_negated, time=time, say_time=premise_time)
    h = event_clause(rng, agent, event, obj, negated=hypothesis_negated, time=time, say_time=hypothesis_time)
    return p, h, case


def make_outcome_negation(rng, label):
    """Negation against a lexical opposite: "did not lose" entails "won"; "won" contradicts "lost"."""
    agent, outcome = rng.choice(AGENTS), rng.choice(OPPOSITE_EVENTS)
    obj = rng.choice(outcome[4])
    case = rng.choice({ENTAILMENT: ["V -> not opposite-V", "not V -> opposite-V"],
                       CONTRADICTION: ["V -> opposite-V", "V -> not V"]}[label])
    hypothesis_opposite, hypothesis_negated = {"V -> not opposite-V": (True, True),
                                               "not V -> opposite-V": (True, False),
                                               "V -> opposite-V": (True, False), "V -> not V": (False, True)}[case]
    premise_negated = case.startswith("not ")
    swap = rng.random() < 0.5  # either verb of the pair can be "V"
    p = outcome_clause(agent, outcome, obj, opposite=swap, negated=premise_negated)
    h = outcome_clause(agent, outcome, obj, opposite=hypothesis_opposite != swap, negated=hypothesis_negated)
    return p, h, case


def _state_pair(rng):
    contradictory = rng.random() < 0.4
    first, second, nouns = rng.choice(CONTRADICTORIES if contradictory else CONTRARIES)
    pair = (first, second)
    adjective, opposite = (first, second) if rng.random() < 0.5 else (second, first)
    return rng.choice(nouns), pair, adjective, opposite, contradictory


def state_hypothesis(rng, label, noun, pair, adjective, opposite, contradictory, *, premise_negated=False):
    """A hypothesis about a premise "the noun was (not) adjective", and the case name."""
    if premise_negated:  # only contradictories: "not open" is "closed"
        case = rng.choice({ENTAILMENT: ["not-A -> B"], CONTRADICTION: ["not-A -> not-B", "not-A -> A"]}[label])
        negated, said = {"not-A -> B": (False, opposite), "not-A -> not-B": (True, opposite),
                         "not-A -> A": (False, adjective)}[case]
    else:
        case = rng.choice({ENTAILMENT: ["A -> A", "A -> not-B"], CONTRADICTION: ["A -> B", "A -> not-A"]}[label])
        negated, said = {"A -> A": (False, adjective), "A -> not-B": (True, opposite),
                         "A -> B": (False, opposite), "A -> not-A": (True, adjective)}[case]
    return state_clause(noun, pair, said, contradictory=contradictory, negated=negated), case


def make_antonym(rng, label):
    noun, pair, adjective, opposite, contradictory = _state_pair(rng)
    if contradictory and rng.random() < 0.4:
        p = state_clause(noun, pair, adjective, contradictory=True, negated=True,
                         opener=rng.choice(["", rng.choice(STATE_OPENERS)]))
        h, case = state_hypothesis(rng, label, noun, pair, adjective, opposite, True, premise_negated=True)
        return p, h, case
    degree = None if contradictory else rng.choice([None, rng.choice(DEGREES)])
    opener = rng.choice(STATE_OPENERS) if degree is None else rng.choice(["", rng.choice(STATE_OPENERS)])
    p = state_clause(noun, pair, adjective, contradictory=contradictory, degree=degree, opener=opener)
    h, case = state_hypothesis(rng, label, noun, pair, adjective, opposite, contradictory)
    return p, h, case


QUANTIFIER_CASES = {  # (premise quantifier, hypothesis quantifier)
    ENTAILMENT: [("all", "some"), ("none", "not all"), ("all", "all"), ("none", "none")],
    CONTRADICTION: [("all", "none"), ("some", "none"), ("none", "some"), ("not all", "all"), ("all", "not all"),
                    ("none", "all")],
}


# The hypothesis says the complement ("failed" for "passed"): (premise, hypothesis quantifier).
COMPLEMENT_CASES = {
    ENTAILMENT: [("all", "none"), ("none", "all"), ("some", "not all")],
    CONTRADICTION: [("all", "some"), ("all", "all"), ("none", "none")],
}


def make_quantifier(rng, label):
    group = rng.choice(GROUPS)
    complement = None
    if rng.random() < 0.5:
        q_premise, q_hypothesis = rng.choice(QUANTIFIER_CASES[label])
        predicate = rng.choice(GROUP_PREDICATES)
        case = f"{q_premise} -> {q_hypothesis}"
    else:
        q_premise, q_hypothesis = rng.choice(COMPLEMENT_CASES[label])
        predicate, complement = rng.choice(GROUP_PREDICATE_PAIRS)
        if rng.random() < 0.5:  # either side of the pair can be the premise's
            predicate, complement = complement, predicate
        case = f"{q_premise} P -> {q_hypothesis} not-P"
    phrasing_p = rng.choice(QUANTIFIERS[q_premise])
    others = [f for f in QUANTIFIERS[q_hypothesis] if f != phrasing_p]  # same quantifier: say it differently
    phrasing_h = rng.choice(others)
    p = quantifier_clause(q_premise, phrasing_p, group, predicate)
    h = quantifier_clause(q_hypothesis, phrasing_h, group, predicate, complement=complement)
    if complement is not None:  # the predicates decide too: "passed" against "failed"
        p.cues.append(words_of(predicate)[0])
    return p, h, case


def make_hypernym(rng, label):
    agent, category = rng.choice(AGENTS), rng.choice(sorted(CATEGORIES))
    hyponyms, verbs = CATEGORIES[category]
    hyponym, verb = rng.choice(hyponyms), rng.choice(verbs)
    case = rng.choice({ENTAILMENT: ["word -> category", "not category -> not word"],
                       CONTRADICTION: ["word -> not category", "not category -> word"]}[label])
    premise_noun, premise_negated, hypothesis_noun, hypothesis_negated = {
        "word -> category": (hyponym, False, category, False),
        "not category -> not word": (category, True, hyponym, True),
        "word -> not category": (hyponym, False, category, True),
        "not category -> word": (category, True, hyponym, False),
    }[case]
    p = category_clause(rng, agent, verb, category, premise_noun, negated=premise_negated)
    h = category_clause(rng, agent, verb, category, hypothesis_noun, negated=hypothesis_negated)
    return p, h, case


FUNCTION_WORDS = {"the", "was", "did", "not", "never", "my", "her", "his", "a"}


def make_conjunction(rng, label):
    """Two clauses about different things; the hypothesis is about one of them (first or second)."""
    for _attempt in range(100):
        premise, hypothesis, case = _conjunction(rng, label)
        first, second = premise.parts
        if not (set(words_of(first)) & set(words_of(second))) - FUNCTION_WORDS:  # nothing in common
            return premise, hypothesis, case
    raise RuntimeError("could not draw two unrelated clauses")


def _conjunction(rng, label):
    clauses = []
    hypothesis, case = None, None
    target = rng.choice([0, 1])
    agents = rng.sample(AGENTS, 2)
    for k in range(2):
        where = "second" if k else "first"
        if rng.random() < 0.5:  # an event
            event = rng.choice(EVENTS)
            obj, time = rng.choice(event[2]), rng.choice(TIMES)
            negated = rng.random() < 0.35
            say_time = not negated and rng.random() < 0.5
            clauses.append(event_clause(rng, agents[k], event, obj, negated=negated, time=time, say_time=say_time))
            if k == target:
                same = label == ENTAILMENT
                hypothesis = event_clause(rng, agents[k], event, obj, negated=negated if same else not negated,
                                          time=time, say_time=False)
                case = f"{where} clause, {'same' if same else 'opposite'} polarity"
        else:  # a state
            noun, pair, adjective, opposite, contradictory = _state_pair(rng)
            clauses.append(state_clause(noun, pair, adjective, contradictory=contradictory))
            if k == target:
                hypothesis, state_case = state_hypothesis(rng, label, noun, pair, adjective, opposite, contradictory)
                case = f"{where} clause, {state_case}"
    joiner = rng.choice(CONJUNCTIONS)
    first, second = clauses
    second_text = sentence_case(second.text) if joiner == ". " else second.text
    premise = Clause(first.text + joiner + second_text, lambda w: first.meaning(w) and second.meaning(w),
                     {**first.atoms, **second.atoms}, clauses[target].cues)
    premise.parts = (first.text, second.text)
    return premise, hypothesis, case


MAKERS = {"negation": make_negation, "antonym": make_antonym, "quantifier": make_quantifier,
          "hypernym": make_hypernym, "conjunction": make_conjunction}


# ---------------------------------------------------------------- checks
def entailment_relation(premise, hypothesis):
    """'entailment', 'contradiction' or 'neutral', by enumerating every world the two clauses talk about."""
    atoms = {**premise.atoms, **hypothesis.atoms}
    names = list(atoms)
    premise_possible = hypothesis_possible = both_possible = False
    entails = True
    for values in itertools.product(*(atoms[n] for n in names)):
        world = dict(zip(names, values))
        p, h = premise.meaning(world), hypothesis.meaning(world)
        premise_possible |= p
        hypothesis_possible |= h
        both_possible |= p and h
        if p and not h:
            entails = False
    assert premise_possible and hypothesis_possible, (premise.text, hypothesis.text)
    if entails:
        return "entailment"
    return "contradiction" if not both_possible else "neutral"


def negation_mismatch_baseline(example):
    """Contradiction iff exactly one of the two sentences holds a negator: the obvious shortcut."""
    negated = [any(w in NEGATORS for w in words_of(example[k])) for k in ("text", "text_pair")]
    return CONTRADICTION if negated[0] != negated[1] else ENTAILMENT


def check_vocabulary():
    adjectives = [a for first, second, _n in CONTRARIES + CONTRADICTORIES for a in (first, second)]
    for first, second, nouns in CONTRARIES + CONTRADICTORIES:
        assert first != second and len(set(nouns)) == len(nouns), (first, second)
    for _past, _base, objects in EVENTS:
        assert len(set(objects)) == len(objects)
    for category, (hyponyms, verbs) in CATEGORIES.items():
        assert category not in hyponyms and len(set(hyponyms)) == len(hyponyms), category
        others = [h for c, (hs, _v) in CATEGORIES.items() if c != category for h in hs]
        assert not set(hyponyms) & set(others), category
    # No negator hides in a neutral phrase, so every negator in a text was placed as one.
    neutral = (AGENTS + TIMES + STATE_OPENERS + GROUP_PREDICATES + [o for e in EVENTS for o in e[2]]
               + [o for e in OPPOSITE_EVENTS for o in e[4]] + [p for pair in GROUP_PREDICATE_PAIRS for p in pair])
    for phrase in neutral:
        assert not set(words_of(phrase)) & set(NEGATORS + adjectives), phrase


def check_example(example, premise, hypothesis):
    relation = entailment_relation(premise, hypothesis)
    assert relation == LABEL_NAMES[example["label"]], (relation, example)
    for key, field in (("text", "premise_cues"), ("text_pair", "hypothesis_cues")):
        words = words_of(example[key])
        assert example[field] and all(cue in words for cue in example[field]), (field, example)
    assert example["text"].endswith(".") and example["text_pair"].endswith(".")


# ---------------------------------------------------------------- splits
def make_example(rng, phenomenon, label):
    premise, hypothesis, case = MAKERS[phenomenon](rng, label)
    example = {
        "text": sentence_case(premise.text) + ".",
        "text_pair": sentence_case(hypothesis.text) + ".",
        "label": label,
        "phenomenon": phenomenon,
        "case": case,
        "premise_cues": [c.lower() for c in premise.cues],
        "hypothesis_cues": [c.lower() for c in hypothesis.cues],
    }
    return example, premise, hypothesis


def pair_key(example):
    return (example["text"] + " || " + example["text_pair"]).lower()


def make_split(name, seen):
    rng = random.Random(SPLIT_SEEDS[name])
    max_words = PROBE_MAX_WORDS if name == "probe" else MAX_WORDS
    slots = [(p, label) for p in PHENOMENA for label in (ENTAILMENT, CONTRADICTION) for _ in range(SPLIT_SIZES[name])]
    rng.shuffle(slots)
    examples = []
    for phenomenon, label in slots:
        for _attempt in range(1000):
            example, premise, hypothesis = make_example(rng, phenomenon, label)
            n_words = len(words_of(example["text"])) + len(words_of(example["text_pair"]))
            if pair_key(example) in seen or n_words > max_words:
                continue
            check_example(example, premise, hypothesis)
            seen.add(pair_key(example))
            examples.append(example)
            break
        else:
            raise RuntimeError(f"could not draw a new {phenomenon} example for {name}")
    return examples


def make_all():
    check_vocabulary()
    seen = set()
    splits = {name: make_split(name, seen) for name in SPLIT_ORDER}
    for name, examples in splits.items():
        counts = Counter((e["phenomenon"], e["label"]) for e in examples)
        for p in PHENOMENA:
            assert counts[(p, ENTAILMENT)] == counts[(p, CONTRADICTION)] == SPLIT_SIZES[name], (name, p, counts)
    keys = [pair_key(e) for examples in splits.values() for e in examples]
    assert len(keys) == len(set(keys)), "a pair appears twice"
    return splits


def render(splits):
    """File name -> exact file content."""
    files = {}
    for name, examples in splits.items():
        files[f"{FILE_PREFIX}{name}.jsonl"] = "".join(json.dumps(e, ensure_ascii=True) + "\n" for e in examples)
    files[f"{FILE_PREFIX}label_names.json"] = json.dumps(LABEL_NAMES) + "\n"
    return files


def stats_markdown(splits):
    lines = ["| split | phenomenon | entailment | contradiction | negation-mismatch baseline |",
             "|---|---|---:|---:|---:|"]
    for name, examples in splits.items():
        for p in [*PHENOMENA, "**all**"]:
            picked = [e for e in examples if p in ("**all**", e["phenomenon"])]
            ent = sum(e["label"] == ENTAILMENT for e in picked)
            hits = sum(negation_mismatch_baseline(e) == e["label"] for e in picked)
            lines.append(f"| {name} | {p} | {ent} | {len(picked) - ent} | {hits / len(picked):.2f} |")
    lines.append("")
    for name, examples in splits.items():
        premise = [len(words_of(e["text"])) for e in examples]
        hypothesis = [len(words_of(e["text_pair"])) for e in examples]
        lines.append(f"- {name}: premise {min(premise)}-{max(premise)} words (mean "
                     f"{sum(premise) / len(premise):.1f}), hypothesis {min(hypothesis)}-{max(hypothesis)} "
                     f"(mean {sum(hypothesis) / len(hypothesis):.1f})")
    cases = Counter((e["phenomenon"], e["case"]) for e in splits["train"])
    lines.append(f"- {len(cases)} cases (ways to build a pair) across the {len(PHENOMENA)} phenomena")
    lines.append(f"- vocabulary: {len(AGENTS)} agents, {len(EVENTS)} event verbs with "
                 f"{sum(len(e[2]) for e in EVENTS)} objects, {len(TIMES)} time phrases, "
                 f"{len(CONTRARIES)} contrary and {len(CONTRADICTORIES)} contradictory adjective pairs, "
                 f"{len(GROUPS)} groups, {len(GROUP_PREDICATES)} group predicates, "
                 f"{len(CATEGORIES)} categories with {sum(len(h) for h, _v in CATEGORIES.values())} members")
    return "\n".join(lines)


def main(argv=None) -> int:
    return dataset_files.main(argv, description=__doc__.split("\n\n")[0], script=__file__, make_all=make_all,
                              render=render, stats_markdown=stats_markdown,
                              stats_help="print counts and baselines per split as Markdown")


if __name__ == "__main__":
    sys.exit(main())
