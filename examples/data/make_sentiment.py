"""Generate the bundled sentiment dataset for the attnflows examples and demo.

Every sentence is built from the templates and word lists in this file (no text
corpus is copied), so the label of each sentence is known by construction:

* ``plain``: one polarity throughout ("the soup was bland") -> that polarity.
* ``negation``: a sentiment word under "not", "never", "no", "nothing",
  "nobody" or "neither ... nor" -> the flipped polarity of that word.
* ``contrast``: two clauses of opposite polarity joined by "but" / "however"
  (the second clause decides) or "although" / "though" / "even though" (the
  main clause decides).
* ``intensifier``: "very", "extremely", "a bit", ... leave the polarity alone;
  "hardly" flips it.
* ``filler``: neutral clauses ("we sat by the window") around one polar clause,
  which decides.

Run ``python make_sentiment.py`` to (re)write ``train.jsonl``, ``dev.jsonl``,
``probe.jsonl`` and ``label_names.json`` next to this file; the output is the
same byte for byte on every run. ``--check`` only verifies that the files on
disk are what the script would write; ``--stats`` prints counts and vocabulary
sizes as Markdown. Standard library only.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dataset_files sits beside this script
import dataset_files  # noqa: E402

SEED = 7
LABEL_NAMES = ["negative", "positive"]
PHENOMENA = ["plain", "negation", "contrast", "intensifier", "filler"]

# Examples per (phenomenon, label) in each split; every split is label-balanced.
SPLIT_SIZES = {
    "probe": {"plain": 6, "negation": 7, "contrast": 7, "intensifier": 6, "filler": 6},
    "dev": {p: 40 for p in PHENOMENA},
    "train": {p: 200 for p in PHENOMENA},
}
# The probe is generated first so that dev and train can never repeat its texts.
SPLIT_ORDER = ["probe", "dev", "train"]
SPLIT_SEEDS = {"probe": SEED * 1000 + 1, "dev": SEED * 1000 + 2, "train": SEED * 1000 + 3}
MIN_WORDS, MAX_WORDS = 6, 30
# Keeps every probe sentence well under 48 BERT word pieces.
PROBE_MAX_WORDS = 22

# ---------------------------------------------------------------- vocabulary

GENERIC_POS = ["good", "great", "excellent", "fantastic", "superb", "wonderful", "impressive", "outstanding"]
GENERIC_NEG = ["bad", "terrible", "awful", "poor", "disappointing", "mediocre", "dreadful", "horrible"]

# domain -> aspect -> (nouns, positive adjectives, negative adjectives).
# Adjectives are listed per aspect so that "the waiter was stale" never happens;
# the generic adjectives above fit every aspect.
DOMAINS = {
    "movie": {
        "story": (
            ["plot", "story", "script", "ending", "screenplay", "dialogue"],
            ["gripping", "clever", "original", "engaging", "compelling", "witty", "touching"],
            ["predictable", "confusing", "dull", "tedious", "clumsy", "contrived", "muddled"],
        ),
        "cast": (
            ["acting", "cast", "lead actor", "lead actress", "villain", "hero"],
            ["convincing", "charming", "believable", "likeable", "moving"],
            ["wooden", "unconvincing", "stiff", "annoying", "bland"],
        ),
        "music": (
            ["soundtrack", "score", "sound design", "theme song"],
            ["memorable", "beautiful", "haunting", "lovely", "catchy"],
            ["forgettable", "grating", "distracting", "repetitive", "irritating"],
        ),
        "pacing": (
            ["pacing", "editing", "first act", "second half", "middle section"],
            ["brisk", "smooth", "lively", "tight"],
            ["sluggish", "slow", "choppy", "plodding", "messy"],
        ),
        "whole": (
            ["film", "movie", "sequel", "documentary", "comedy", "thriller", "drama", "remake"],
            ["enjoyable", "delightful", "entertaining", "memorable", "moving", "charming"],
            ["boring", "dull", "tedious", "forgettable", "pointless", "tiresome"],
        ),
    },
    "product": {
        "whole": (
            ["phone", "laptop", "blender", "kettle", "vacuum cleaner", "printer", "speaker",
             "headset", "camera", "toaster", "router", "keyboard", "smartwatch"],
            ["reliable", "handy", "useful", "dependable"],
            ["unreliable", "useless", "defective", "faulty", "clunky"],
        ),
        "display": (
            ["screen", "display", "touchscreen"],
            ["sharp", "crisp", "bright", "vivid", "clear"],
            ["blurry", "dim", "grainy", "dull"],
        ),
        "software": (
            ["interface", "app", "setup", "menu", "software", "firmware"],
            ["intuitive", "simple", "smooth", "straightforward", "responsive"],
            ["confusing", "buggy", "frustrating", "clunky", "laggy", "sluggish"],
        ),
        "build": (
            ["build quality", "casing", "hinge", "strap", "lid", "handle"],
            ["sturdy", "solid", "durable", "robust"],
            ["flimsy", "fragile", "shoddy", "weak"],
        ),
        "service": (
            ["delivery", "customer service", "support team", "packaging", "returns process"],
            ["prompt", "helpful", "quick", "efficient", "careful"],
            ["slow", "unhelpful", "sloppy", "careless", "useless"],
        ),
        "battery": (["battery", "battery life"], [], []),
    },
    "restaurant": {
        "food": (
            ["soup", "pasta", "steak", "curry", "dessert", "bread", "pizza", "salad", "fish",
             "burger", "risotto", "cheesecake"],
            ["delicious", "tasty", "fresh", "flavourful", "perfect"],
            ["bland", "stale", "greasy", "soggy", "tasteless", "overcooked"],
        ),
        "staff": (
            ["waiter", "waitress", "service", "host", "manager", "bartender"],
            ["friendly", "attentive", "welcoming", "helpful", "polite"],
            ["rude", "slow", "unfriendly", "careless", "dismissive", "inattentive"],
        ),
        "place": (
            ["atmosphere", "dining room", "terrace", "decor", "ambience", "interior"],
            ["cozy", "relaxing", "charming", "inviting", "lovely", "pleasant"],
            ["noisy", "cramped", "gloomy", "dingy", "dirty", "depressing"],
        ),
        "whole": (
            ["restaurant", "meal", "dinner", "lunch", "brunch", "cafe", "bistro", "tasting menu"],
            ["enjoyable", "delightful", "memorable", "satisfying"],
            ["forgettable", "overpriced", "underwhelming", "disappointing"],
        ),
    },
}

# Neutral phrases that lengthen a subject: "the curry that the waiter suggested".
SUBJECT_TAILS = {
    ("movie", "whole"): ["we saw last week", "everyone was talking about", "my cousin picked",
                         "from the festival"],
    ("product", "whole"): ["I bought last month", "I ordered online", "from the shop on the corner",
                           "that my brother gave me"],
    ("restaurant", "whole"): ["on the high street", "near the harbour", "we tried on Saturday"],
    ("restaurant", "food"): ["we ordered", "on the lunch menu", "that the waiter suggested",
                             "from the specials board"],
}

# Objects of "I regretted ..." / "I never regretted ...", per domain.
REGRET_OBJECTS = {
    "movie": ["watching the {whole}", "seeing the {whole}", "paying for the tickets",
              "sitting through the {whole}"],
    "product": ["buying the {whole}", "ordering the {whole}", "paying for the {whole}"],
    "restaurant": ["ordering the {food}", "booking a table there", "eating there",
                   "choosing the {food}"],
}

# Sentiment verbs (past tense for plain clauses, base form after "did not").
POS_VERBS = ["loved", "enjoyed", "liked", "adored"]
NEG_VERBS = ["hated", "disliked", "detested"]
POS_VERB_BASE = ["love", "enjoy", "like"]
# Negative nouns, only ever used after "no" (so they flip to positive), with their phrasing.
NEG_NOUN_TEMPLATES = {
    "complaints": ["I had no complaints about {subject}", "we had no complaints about {subject}"],
    "problems": ["there were no problems with {subject}", "we had no problems with {subject}"],
    "issues": ["there were no issues with {subject}", "I had no issues with {subject}"],
    "flaws": ["I found no flaws in {subject}", "I could see no flaws in {subject}"],
    "faults": ["I found no faults with {subject}"],
    "regrets": ["{reviewer} had no regrets about {regret}"],
}
NEG_NOUNS = list(NEG_NOUN_TEMPLATES)

REVIEWERS = ["I", "we", "my partner", "my friend", "my sister", "my father", "the kids"]

STRONG_INTENSIFIERS = ["very", "extremely", "really", "incredibly", "truly", "remarkably",
                       "so", "quite", "pretty", "genuinely", "rather"]
# Downtoners only make sense with negative words ("a bit slow", not "a bit superb").
DOWNTONERS = ["a bit", "slightly", "somewhat", "a little"]
VERB_INTENSIFIERS = ["really", "absolutely", "truly"]

# Neutral clauses: no sentiment word, no negator, no contrast word (checked below).
FILLERS = {
    "movie": [
        "we watched it on a Tuesday", "the cinema was near the station",
        "I saw it with my brother", "the screening started at nine",
        "it runs for about two hours", "we bought popcorn before it started",
        "it was the late showing", "I streamed it at home on a Sunday",
        "the film is set in a small coastal town", "it was released last spring",
        "the director also made a western years ago", "my cousin picked the film",
        "we sat in the third row", "the tickets were booked online",
        "the trailer played before the news", "half the audience were students",
    ],
    "product": [
        "I bought it last month", "it arrived in a brown box", "the parcel came on a Thursday",
        "I use it mostly in the kitchen", "it comes in grey and black",
        "I ordered it for my father", "the box included a manual and a cable",
        "it replaced an older model", "I have had it for six weeks",
        "the courier left it with a neighbour", "it weighs about two kilograms",
        "I use it every morning before work", "it was delivered to my office",
        "my brother has the same model in blue",
    ],
    "restaurant": [
        "we went there on a Friday night", "the restaurant is next to the post office",
        "we booked a table for four", "I went with two colleagues after work",
        "it was my aunt's birthday", "we arrived at about eight", "the menu changes every season",
        "we sat by the window", "parking was on the street behind it", "we took the bus there",
        "they open at noon on weekends", "it used to be a bookshop",
        "we had been walking around the market all day",
    ],
    "any": [
        "it was raining that evening", "a friend told me about it", "I read about it in the paper",
        "I am writing this a week later", "my neighbour asked me to write this",
        "it was the first week of the school holidays",
    ],
}

OPENERS = ["Overall, ", "In my opinion, ", "Honestly, ", "For me, ", "To my mind, "]
# Only before a clause that starts with its subject ("I thought the plot was dull").
THAT_OPENERS = {"was": ["I thought ", "I felt that "], "is": ["I think ", "I feel that "]}
CLOSERS = [" overall", " this time", " in the end", " to be honest"]

NEGATORS = ["not", "never", "no", "nothing", "nobody", "neither", "nor", "hardly"]
CONTRAST_WORDS = ["but", "although", "though", "however"]

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words_of(text):
    return WORD_RE.findall(text.lower())


def build_lexicon():
    """Sentiment word -> polarity (1 positive, 0 negative); a word never has both."""
    lexicon = {}

    def add(words, polarity):
        for word in words:
            if lexicon.setdefault(word, polarity) != polarity:
                raise AssertionError(f"{word!r} is listed as both positive and negative")

    add(GENERIC_POS + POS_VERBS + POS_VERB_BASE + ["recommend"], 1)
    add(GENERIC_NEG + NEG_VERBS + NEG_NOUNS + ["regretted", "regret"], 0)
    for aspects in DOMAINS.values():
        for _nouns, pos, neg in aspects.values():
            add(pos, 1)
            add(neg, 0)
    return lexicon


LEXICON = build_lexicon()


# ---------------------------------------------------------------- clauses


class Builder:
    """Draws the parts of one sentence; remembers the sentiment words it placed."""

    def __init__(self, rng, domain):
        self.rng = rng
        self.domain = domain
        self.be = "was" if rng.random() < 0.75 else "is"
        self.placed = []  # sentiment words in the order they were put into the text
        self.used = set()  # nouns and adjectives already in this sentence, never repeated

    def choice(self, seq):
        return self.rng.choice(seq)

    def aspect(self, with_own_adjectives=False):
        aspects = DOMAINS[self.domain]
        names = [n for n in aspects if aspects[n][1] or not with_own_adjectives]
        return self.choice(names)

    def fresh(self, seq, n=1):
        """``n`` distinct items of ``seq`` not used yet in this sentence (if it has enough)."""
        unused = [x for x in seq if x not in self.used]
        picked = self.rng.sample(unused if len(unused) >= n else seq, n)
        self.used.update(picked)
        return picked

    def subject(self, aspect):
        (noun,) = self.fresh(DOMAINS[self.domain][aspect][0])
        det = "this" if aspect == "whole" and self.rng.random() < 0.25 else "the"
        tails = SUBJECT_TAILS.get((self.domain, aspect))
        tail = " " + self.choice(tails) if tails and self.rng.random() < 0.25 else ""
        return f"{det} {noun}{tail}"

    def adjectives(self, aspect, polarity, n=1):
        _nouns, pos, neg = DOMAINS[self.domain][aspect]
        own = pos if polarity == 1 else neg
        generic = GENERIC_POS if polarity == 1 else GENERIC_NEG
        # Prefer the aspect's own words; generic ones keep every aspect usable.
        pool = own if own and self.rng.random() < 0.7 else generic
        picked = self.fresh(pool, n)
        self.placed.extend(picked)
        return picked

    def word(self, seq):
        (picked,) = self.fresh(seq)
        self.placed.append(picked)
        return picked

    def regret_object(self):
        template = self.choice(REGRET_OBJECTS[self.domain])
        aspects = DOMAINS[self.domain]
        return template.format(whole=self.choice(aspects["whole"][0]),
                               food=self.choice(aspects.get("food", aspects["whole"])[0]))

    def reviewer(self):
        return self.choice(REVIEWERS)

    def filler(self):
        return self.choice(FILLERS[self.domain] + FILLERS["any"])

    # A polar clause of one polarity, with no negator in it.
    def polar_clause(self, polarity, forms=("adj", "adj", "adj", "adj2", "verb", "found")):
        form = self.choice(forms)
        if form == "verb":
            verb = self.word(POS_VERBS if polarity == 1 else NEG_VERBS)
            return f"{self.reviewer()} {verb} {self.subject(self.aspect())}"
        aspect = self.aspect()
        subject = self.subject(aspect)
        if form == "found":
            (adj,) = self.adjectives(aspect, polarity)
            return f"I found {subject} {adj}"
        if form == "adj2":
            first, second = self.adjectives(aspect, polarity, 2)
            return f"{subject} {self.be} {first} and {second}"
        (adj,) = self.adjectives(aspect, polarity)
        return f"{subject} {self.be} {adj}"


def sentence_case(text):
    """Capitalise the first letter of every sentence; "i" as a word becomes "I"."""
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def with_opener(b, clause):
    if b.rng.random() < 0.35:
        starts_with_subject = clause.startswith(("the ", "this "))
        clause = b.choice(OPENERS + THAT_OPENERS[b.be] if starts_with_subject else OPENERS) + clause
    if b.rng.random() < 0.2:
        clause += b.choice(CLOSERS)
    return clause


def make_plain(b, label):
    form = b.choice(["clause", "clause", "clause", "two", "exclaim", "recommend"])
    if form == "two":
        return f"{b.polar_clause(label)} and {b.polar_clause(label)}."
    if form == "exclaim":
        # Countable nouns only: "what a clunky software" is not English.
        aspect = b.choice(["whole", "food"] if b.domain == "restaurant" else ["whole"])
        noun = b.choice(DOMAINS[b.domain][aspect][0])
        (adj,) = b.adjectives(aspect, label)
        article = "an" if adj[0] in "aeiou" else "a"
        return f"what {article} {adj} {noun} that {b.be}!"
    if form == "recommend":
        if label == 1:
            b.placed.append("recommend")
            return f"I would recommend {b.subject('whole')} to anyone."
        b.placed.append("regretted")
        return f"{b.reviewer()} regretted {b.regret_object()}."
    return with_opener(b, b.polar_clause(label)) + "."


def make_negation(b, label):
    polarity = 1 - label  # the polarity of the word that gets negated
    verb_forms = ["did not verb", "would not recommend"] if polarity == 1 else ["never regretted", "no noun"]
    form = b.choice(["not", "not", "not at all", "never", "would not call", "did not find",
                     "did not seem", "nobody", "nothing", "neither"] + verb_forms)
    if form == "did not verb":
        verb = b.word(POS_VERB_BASE)
        adverb = b.choice(["did not", "never"])
        verb = {"love": "loved", "enjoy": "enjoyed", "like": "liked"}[verb] if adverb == "never" else verb
        b.placed[-1] = verb
        return f"{b.reviewer()} {adverb} {verb} {b.subject(b.aspect())}."
    if form == "would not recommend":
        b.placed.append("recommend")
        return f"I would not recommend {b.subject('whole')} to anyone."
    if form == "never regretted":
        verb = b.choice(["never regretted", "did not regret"])
        b.placed.append(verb.split()[-1])
        return f"{b.reviewer()} {verb} {b.regret_object()}."
    if form == "no noun":
        noun = b.word(NEG_NOUNS)
        template = b.choice(NEG_NOUN_TEMPLATES[noun])
        return template.format(subject=b.subject(b.aspect()), reviewer=b.reviewer(),
                               regret=b.regret_object()) + "."
    aspect = b.aspect()
    subject = b.subject(aspect)
    if form == "neither":
        first, second = b.adjectives(aspect, polarity, 2)
        return f"{subject} {b.be} neither {first} nor {second}."
    (adj,) = b.adjectives(aspect, polarity)
    clause = {
        "not": f"{subject} {b.be} not {adj}",
        "not at all": f"{subject} {b.be} not {adj} at all",
        "never": f"{subject} {b.be} never {adj}",
        "would not call": f"I would not call {subject} {adj}",
        "did not find": f"I did not find {subject} {adj}",
        "did not seem": f"{subject} did not seem {adj} to me",
        "nobody": f"nobody would call {subject} {adj}",
        "nothing": f"there {b.be} nothing {adj} about {subject}",
    }[form]
    return with_opener(b, clause) + "."


def make_contrast(b, label):
    """The deciding clause has polarity ``label``; the other one the opposite."""
    other = b.polar_clause(1 - label)
    # Fix the order of the placed words to their order in the text below.
    placed_other = b.placed
    b.placed = []
    deciding = b.polar_clause(label)
    placed_deciding = b.placed
    form = b.choice(["but", "but", "but", "however", "although", "although after",
                     "though", "even though after"])
    if form == "but":
        still = b.choice(["", "", "", "in the end ", "overall "])
        text, first = f"{other}, but {still}{deciding}.", "other"
    elif form == "however":
        text, first = f"{other}. however, {deciding}.", "other"
    elif form == "although":
        text, first = f"although {other}, {deciding}.", "other"
    elif form == "though":
        text, first = f"though {other}, {deciding}.", "other"
    elif form == "although after":
        text, first = f"{deciding}, although {other}.", "deciding"
    else:
        text, first = f"{deciding}, even though {other}.", "deciding"
    b.placed = placed_other + placed_deciding if first == "other" else placed_deciding + placed_other
    return text


def make_intensifier(b, label):
    roll = b.rng.random()
    hardly_rate = 0.25 if label == 0 else 0.1
    if roll < hardly_rate:
        # "hardly" flips: "hardly original" is negative, "hardly boring" positive.
        aspect = b.aspect()
        subject = b.subject(aspect)
        (adj,) = b.adjectives(aspect, 1 - label)
        return with_opener(b, b.choice([f"{subject} {b.be} hardly {adj}",
                                        f"I could hardly call {subject} {adj}"])) + "."
    if roll < 0.4:
        adverb = b.choice(VERB_INTENSIFIERS)
        verb = b.word(POS_VERBS if label == 1 else NEG_VERBS)
        return f"{b.reviewer()} {adverb} {verb} {b.subject(b.aspect())}."
    aspect = b.aspect()
    subject = b.subject(aspect)
    intensifiers = STRONG_INTENSIFIERS + (DOWNTONERS if label == 0 else [])
    if b.rng.random() < 0.2:
        first, second = b.adjectives(aspect, label, 2)
        return (f"{subject} {b.be} {b.choice(intensifiers)} {first} and "
                f"{b.choice(intensifiers)} {second}.")
    (adj,) = b.adjectives(aspect, label)
    clause = b.choice([f"{subject} {b.be} {b.choice(intensifiers)} {adj}",
                       f"I found {subject} {b.choice(intensifiers)} {adj}"])
    return with_opener(b, clause) + "."


def make_filler(b, label):
    first = b.filler()
    second = b.filler()
    while second == first:
        second = b.filler()
    polar = b.polar_clause(label)
    return b.choice([
        f"{first}, and {polar}.",
        f"{first}. {polar}.",
        f"{polar}. {first}.",
        f"{polar}; {first}.",
        f"{first} and {second}; {polar}.",
        f"{first}. {polar}, and {second}.",
    ])


MAKERS = {"plain": make_plain, "negation": make_negation, "contrast": make_contrast,
          "intensifier": make_intensifier, "filler": make_filler}


# ---------------------------------------------------------------- the label rule, re-derived


def clause_polarity(text):
    """Polarity of a clause from the lexicon: a negator flips every sentiment word after it."""
    flipped = False
    polarities = []
    for word in words_of(text):
        if word in NEGATORS:
            flipped = True
        elif word in LEXICON:
            polarities.append(1 - LEXICON[word] if flipped else LEXICON[word])
    assert polarities, f"no sentiment word in clause {text!r}"
    assert len(set(polarities)) == 1, f"mixed polarity inside one clause {text!r}"
    return polarities[0]


def split_contrast(text):
    """(deciding clause, other clause) of a contrast sentence, or None if it has no contrast."""
    lower = text.lower().rstrip(".!")
    for lead in ("although ", "though "):
        if lower.startswith(lead):
            other, deciding = lower[len(lead):].split(", ", 1)
            return deciding, other
    if ". however, " in lower:
        other, deciding = lower.split(". however, ")
        return deciding, other
    for joint in (", even though ", ", although "):
        if joint in lower:
            deciding, other = lower.split(joint)
            return deciding, other
    if ", but " in lower:
        other, deciding = lower.split(", but ")
        return deciding, other
    return None


def rule_label(text):
    """The label the construction rules give, read back from the text alone."""
    parts = split_contrast(text)
    if parts is None:
        return clause_polarity(text)
    deciding, other = parts
    assert clause_polarity(deciding) != clause_polarity(other), f"contrast without contrast: {text!r}"
    return clause_polarity(deciding)


def check_vocabulary():
    """Neutral material must not carry sentiment, negation or contrast."""
    loaded = set(LEXICON) | set(NEGATORS) | set(CONTRAST_WORDS)
    neutral = [f for fs in FILLERS.values() for f in fs] + OPENERS + CLOSERS + REVIEWERS
    neutral += [o for os_ in THAT_OPENERS.values() for o in os_]
    neutral += STRONG_INTENSIFIERS + DOWNTONERS + VERB_INTENSIFIERS
    neutral += [o for os_ in REGRET_OBJECTS.values() for o in os_]
    neutral += [t for ts in SUBJECT_TAILS.values() for t in ts]
    # Negation templates: only their own noun and "no" may be loaded.
    neutral += [t.format(subject="", reviewer="", regret="").replace(f"no {noun}", "")
                for noun, ts in NEG_NOUN_TEMPLATES.items() for t in ts]
    neutral += [n for aspects in DOMAINS.values() for nouns, _p, _n in aspects.values() for n in nouns]
    for phrase in neutral:
        bad = set(words_of(phrase)) & loaded
        assert not bad, f"neutral phrase {phrase!r} contains {sorted(bad)}"


def check_example(example, placed):
    text, label, phenomenon = example["text"], example["label"], example["phenomenon"]
    sentiment_words, negators = example["sentiment_words"], example["negators"]
    assert label in (0, 1) and phenomenon in PHENOMENA
    assert sentiment_words == placed, f"sentiment words {sentiment_words} != placed {placed}: {text!r}"
    assert rule_label(text) == label, f"label {label} breaks the rule: {text!r}"
    lexical = [LEXICON[w] for w in sentiment_words]
    has_contrast = split_contrast(text) is not None
    assert has_contrast == (phenomenon == "contrast"), text
    if phenomenon == "negation":
        # Word spotting fails: every sentiment word has the opposite polarity of the label.
        assert negators and all(p == 1 - label for p in lexical), text
    elif phenomenon == "contrast":
        assert set(lexical) == {0, 1} and not negators, text
    elif phenomenon == "intensifier" and "hardly" in negators:
        assert negators == ["hardly"] and all(p == 1 - label for p in lexical), text
    else:
        assert not negators and all(p == label for p in lexical), text
    n_words = len(words_of(text))
    assert MIN_WORDS <= n_words <= MAX_WORDS, text


# ---------------------------------------------------------------- splits


def make_example(rng, phenomenon, label):
    b = Builder(rng, rng.choice(sorted(DOMAINS)))
    text = sentence_case(MAKERS[phenomenon](b, label))
    words = words_of(text)
    example = {
        "text": text,
        "label": label,
        "phenomenon": phenomenon,
        "sentiment_words": [w for w in words if w in LEXICON],
        "negators": [w for w in words if w in NEGATORS],
    }
    return example, b.placed


def make_split(name, seen):
    rng = random.Random(SPLIT_SEEDS[name])
    max_words = PROBE_MAX_WORDS if name == "probe" else MAX_WORDS
    slots = [(p, label) for p in PHENOMENA for label in (0, 1) for _ in range(SPLIT_SIZES[name][p])]
    rng.shuffle(slots)
    examples = []
    for phenomenon, label in slots:
        for _attempt in range(1000):
            example, placed = make_example(rng, phenomenon, label)
            n_words = len(words_of(example["text"]))
            if example["text"].lower() in seen or not MIN_WORDS <= n_words <= max_words:
                continue
            check_example(example, placed)
            seen.add(example["text"].lower())
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
            assert counts[(p, 0)] == counts[(p, 1)] == SPLIT_SIZES[name][p], (name, p, counts)
    assert len(splits["probe"]) == 64
    texts = [e["text"].lower() for examples in splits.values() for e in examples]
    assert len(texts) == len(set(texts)), "a text appears twice"
    return splits


def render(splits):
    """File name -> exact file content."""
    files = {}
    for name, examples in splits.items():
        files[f"{name}.jsonl"] = "".join(json.dumps(e, ensure_ascii=True) + "\n" for e in examples)
    files["label_names.json"] = json.dumps(LABEL_NAMES) + "\n"
    return files


def stats_markdown(splits):
    lines = ["| split | phenomenon | negative | positive | total |", "|---|---|---:|---:|---:|"]
    for name, examples in splits.items():
        counts = Counter((e["phenomenon"], e["label"]) for e in examples)
        for p in PHENOMENA:
            neg, pos = counts[(p, 0)], counts[(p, 1)]
            lines.append(f"| {name} | {p} | {neg} | {pos} | {neg + pos} |")
        lines.append(f"| {name} | **all** | {sum(e['label'] == 0 for e in examples)} | "
                     f"{sum(e['label'] == 1 for e in examples)} | {len(examples)} |")
    lines.append("")
    for name, examples in splits.items():
        lengths = [len(words_of(e["text"])) for e in examples]
        mean = sum(lengths) / len(lengths)
        lines.append(f"- {name}: {min(lengths)}-{max(lengths)} words, mean {mean:.1f}")
    n_subjects = sum(len(nouns) for aspects in DOMAINS.values() for nouns, _p, _n in aspects.values())
    pos = sorted(w for w, p in LEXICON.items() if p == 1)
    neg = sorted(w for w, p in LEXICON.items() if p == 0)
    n_fillers = sum(len(f) for f in FILLERS.values())
    n_intensifiers = len(set(STRONG_INTENSIFIERS + DOWNTONERS + VERB_INTENSIFIERS + ["hardly"]))
    lines += [
        f"- vocabulary: {len(DOMAINS)} domains, {sum(len(a) for a in DOMAINS.values())} aspects, "
        f"{n_subjects} subject nouns, {len(pos)} positive and {len(neg)} negative sentiment words, "
        f"{len(NEGATORS)} negators, {n_intensifiers} "
        f"intensifiers/downtoners (with \"hardly\"), {n_fillers} filler clauses, "
        f"{len(OPENERS) + sum(map(len, THAT_OPENERS.values()))} openers, {len(CLOSERS)} closers",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    return dataset_files.main(argv, description=__doc__.split("\n\n")[0], script=__file__, make_all=make_all,
                              render=render, stats_markdown=stats_markdown,
                              stats_help="print counts per split as Markdown")


if __name__ == "__main__":
    sys.exit(main())
