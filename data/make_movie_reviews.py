"""Write data/movie_reviews.csv: synthetic movie reviews with a real, learnable sentiment signal.

The sample stands in for IMDB (notebook 04) in the offline `smoke` profile. Like IMDB it has two
balanced classes (0 = negative, 1 = positive) and columns `text`, `label`. The signal is real but
not a single keyword:

* most of each review is neutral (plot, cast, setting) and says nothing about the verdict;
* the verdict comes from opinion sentences whose adjectives may be negated ("was not gripping");
* a quarter of the reviews mix in one sentence of the opposite opinion;
* most reviews, like real ones, end on a verdict ("All in all, a superb film."), some do not;
* 4 % of the labels are flipped, so no model can be perfect (as with real annotations).

Every sample in data/ follows this pattern: one `make_<name>.py` per file, a fixed seed, a module
docstring that says what signal the data carries, and `python data/make_<name>.py` rewrites the
file byte for byte.
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
ROWS = 1500
LABEL_NOISE = 0.04
OUT = Path(__file__).with_name("movie_reviews.csv")

POSITIVE = ["brilliant", "moving", "gripping", "delightful", "superb", "charming", "clever",
            "beautiful", "memorable", "thrilling", "heartfelt", "stunning", "witty", "wonderful"]
NEGATIVE = ["dull", "clumsy", "tedious", "bland", "awful", "forgettable", "messy", "lifeless",
            "predictable", "boring", "shallow", "painful", "sloppy", "tiresome"]
ASPECTS = ["the acting", "the script", "the direction", "the soundtrack", "the pacing", "the ending",
           "the dialogue", "the cinematography", "the lead performance", "the story"]
NEUTRAL = [
    "The film follows a {who} who moves to {where} after {event}.",
    "It runs for about {minutes} minutes and was shot in {where}.",
    "{actor} plays the {who}, with {actor2} in a supporting role.",
    "The story takes place over a single {period} in {where}.",
    "I watched it on a {day} evening with {company}.",
    "Most of the second half is set in {where}.",
    "It is based on a novel from the {decade}s.",
    "The opening scene shows {where} at night.",
]
FILL = {
    "who": ["young teacher", "retired detective", "struggling musician", "lonely farmer", "ship captain",
            "nurse", "chess prodigy", "war veteran", "chef", "journalist"],
    "where": ["Lisbon", "a small mountain town", "Chicago", "a fishing village", "Berlin", "the desert",
              "a space station", "Mumbai", "an old hotel", "Glasgow"],
    "event": ["losing a job", "a family funeral", "a strange letter", "a divorce", "winning a prize"],
    "minutes": [str(m) for m in range(85, 165, 5)],
    "actor": ["Ana Reyes", "Tom Becker", "Mei Lin", "Omar Haddad", "Sara Novak", "Jon Price"],
    "actor2": ["Lena Ortiz", "Paul Grant", "Ivy Chen", "Karl Berg", "Nia Brooks"],
    "period": ["summer", "winter", "weekend", "year"],
    "day": ["Friday", "rainy", "quiet", "Sunday"],
    "company": ["friends", "my sister", "my parents", "a colleague"],
    "decade": ["1950", "1970", "1990", "2010"],
}
VERDICT = ["All in all, a {adj} film.", "In short: {adj}.", "My verdict: {adj}."]
OPINION = [
    "{aspect} was {neg}{adj}.",
    "I found {aspect} {neg}{adj}.",
    "Overall the movie is {neg}{adj}.",
    "Honestly, {aspect} felt {neg}{adj} from start to finish.",
]


def fill(template: str, rng: random.Random) -> str:
    out = template
    for key, options in FILL.items():
        out = out.replace("{" + key + "}", rng.choice(options), 1)
    return out


def opinion(positive: bool, rng: random.Random) -> str:
    negated = rng.random() < 0.25  # "not dull" carries the opposite opinion of "dull"
    words = NEGATIVE if positive == negated else POSITIVE
    text = rng.choice(OPINION).format(aspect=rng.choice(ASPECTS), neg="not " if negated else "",
                                      adj=rng.choice(words))
    return text[0].upper() + text[1:]


def review(label: int, rng: random.Random) -> str:
    sentences = [fill(rng.choice(NEUTRAL), rng) for _ in range(rng.randint(1, 4))]
    opinions = [opinion(label == 1, rng) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.25:  # a dissenting remark that the overall verdict outweighs
        opinions.append(opinion(label != 1, rng))
        opinions.append(opinion(label == 1, rng))
    for sentence in opinions:
        sentences.insert(rng.randint(0, len(sentences)), sentence)
    if rng.random() < 0.6:
        sentences.append(rng.choice(VERDICT).format(adj=rng.choice(POSITIVE if label == 1 else NEGATIVE)))
    return " ".join(sentences)


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        label = i % 2
        text = review(label, rng)
        if rng.random() < LABEL_NOISE:
            label = 1 - label
        rows.append((text, label))
    rng.shuffle(rows)
    write_sample_csv(OUT, ["text", "label"], rows)


if __name__ == "__main__":
    main()
