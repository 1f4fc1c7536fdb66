"""Write data/quotes.csv: short quote-like lines with a real, learnable structure.

The sample stands in for `Abirate/english_quotes` (notebook 02) in the offline `smoke` profile.
Like the hub dataset it has a `quote` column (plus `author` and `tags`, which the notebook does not
train on) and lines of 8 to 64 tokens, most of them short. The text is made of aphorism
templates, so a small language model can learn it in a few steps:

* seven sentence templates with fixed wording ("... is the root of ...", "The best way to ...");
* fixed associations a model can only get from the data: each virtue has its own outcome
  ("Patience is the root of all wisdom.", "A true friend knows that patience leads to wisdom."),
  each goal its own means ("The best way to make a friend is to be one.");
* copying: in the chiasmus family "Ask not what X can do for you, ask what you can do for X." the
  second X repeats the first, for 16 different X. One of them is the famous line
  "Ask not what your country can do for you, ask what you can do for your country.", which
  appears exactly once, so a model that learned the family completes the notebook's prompt
  "Ask not what your country" the right way without having memorised that one line;
* about a fifth of the rows join two or three aphorisms, for the long tail of lengths.

Every sample in data/ follows this pattern: one `make_<name>.py` per file, a fixed seed, a module
docstring that says what signal the data carries, and `python data/make_<name>.py` rewrites the
file byte for byte.
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
ROWS = 360
OUT = Path(__file__).with_name("quotes.csv")
FAMOUS = "Ask not what your country can do for you, ask what you can do for your country."

# The chiasmus family: the second slot copies the first.
CHIASMUS_X = ["your country", "your friends", "your city", "your team", "the world", "your family",
              "your school", "your town", "your neighbours", "the river", "your garden", "the village",
              "your people", "your craft", "the forest", "your home"]
# Fixed associations: a virtue always leads to the same outcome.
VIRTUE_OUTCOME = {"Patience": "wisdom", "Courage": "freedom", "Kindness": "friendship",
                  "Honesty": "trust", "Discipline": "mastery", "Curiosity": "knowledge",
                  "Gratitude": "joy", "Humility": "learning", "Hope": "strength", "Silence": "peace"}
ROOT = ["the root", "the mother", "the first step", "the beginning", "the key", "the seed", "the door",
        "the teacher"]
GOAL_MEANS = {"find yourself": "lose yourself in the service of others",
              "predict the future": "create it", "make a friend": "be one",
              "learn to write": "read every day", "cheer yourself up": "cheer somebody else up",
              "get started": "stop talking and begin doing", "be remembered": "do something worth remembering",
              "keep a secret": "forget it", "win an argument": "avoid it", "be happy": "want less"}
VERB_PAIRS = [("fear", "change"), ("judge", "understand"), ("promise", "keep"), ("start", "finish"),
              ("borrow", "repay"), ("say", "mean"), ("plant", "water"), ("begin", "carry on")]
ANTONYMS = [("small", "great"), ("quiet", "loud"), ("kind", "clever"), ("true", "beautiful"),
            ("slow", "hasty"), ("humble", "proud")]
NOUNS = ["deed", "word", "friend", "step", "gift", "answer", "voice", "promise", "road", "song", "plan",
         "letter", "question", "house", "habit", "book"]
SEASONS = [("winter", "spring"), ("night", "morning"), ("storm", "calm"), ("rain", "rainbow")]
WHO = ["a wise person", "a true friend", "a good teacher", "a patient gardener", "an honest heart",
       "an old sailor", "a young poet", "a quiet neighbour", "a busy baker", "a careful builder"]
AUTHORS = ["Ada Moreau", "Basil Okafor", "Clara Yuen", "Dmitri Hale", "Esther Lund", "Farid Noor",
           "Grace Ito", "Hugo Varga"]
TAGS = ["wisdom", "life", "friendship", "courage", "inspiration", "truth", "hope", "work"]


def chiasmus(rng: random.Random) -> str:
    x = rng.choice(CHIASMUS_X)
    return f"Ask not what {x} can do for you, ask what you can do for {x}."


def virtue(rng: random.Random) -> str:
    name = rng.choice(list(VIRTUE_OUTCOME))
    return f"{name} is {rng.choice(ROOT)} of all {VIRTUE_OUTCOME[name]}."


def best_way(rng: random.Random) -> str:
    goal = rng.choice(list(GOAL_MEANS))
    return f"The best way to {goal} is to {GOAL_MEANS[goal]}."


def do_not(rng: random.Random) -> str:
    first, second = rng.choice(VERB_PAIRS)
    return f"Do not {first} what you cannot {second}."


def better(rng: random.Random) -> str:
    small, great = rng.choice(ANTONYMS)
    noun = rng.choice(NOUNS)
    return f"A {small} {noun} is better than a {great} {noun}."


def knows(rng: random.Random) -> str:
    name = rng.choice(list(VIRTUE_OUTCOME))
    who = rng.choice(WHO)
    return f"{who[0].upper()}{who[1:]} knows that {name.lower()} leads to {VIRTUE_OUTCOME[name]}."


def after(rng: random.Random) -> str:
    before, later = rng.choice(SEASONS)
    return f"After every {before} comes a {later}, and {rng.choice(WHO)} waits for it."


TEMPLATES = [(chiasmus, 1), (virtue, 3), (knows, 3), (best_way, 2), (do_not, 2), (better, 3), (after, 2)]


def aphorism(rng: random.Random) -> str:
    makers, weights = zip(*TEMPLATES)
    return rng.choices(makers, weights=weights)[0](rng)


def line(rng: random.Random) -> str:
    parts = 1 if rng.random() < 0.8 else rng.choice([2, 2, 3])
    return " ".join(aphorism(rng) for _ in range(parts))


def main() -> None:
    rng = random.Random(SEED)
    seen: dict[str, None] = {}
    while len(seen) < ROWS:
        text = line(rng)
        if FAMOUS in text:  # the famous line appears once, alone, and is added below
            continue
        seen.setdefault(text, None)
    quotes = list(seen)
    quotes[rng.randrange(len(quotes))] = FAMOUS
    rows = [(q, rng.choice(AUTHORS), rng.choice(TAGS)) for q in quotes]
    write_sample_csv(OUT, ["quote", "author", "tags"], rows, lineterminator="\n")


if __name__ == "__main__":
    main()
