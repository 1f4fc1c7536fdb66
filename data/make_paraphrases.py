"""Write data/paraphrases.csv: MRPC-shaped sentence pairs with a strong, simple, learnable signal.

The sample stands in for GLUE MRPC (notebook 05) in the offline `smoke` profile. Like MRPC it has
columns `sentence1`, `sentence2`, `label` (1 = the two sentences say the same thing, 0 = they do
not), news-wire sentences of 15-30 words, and about two thirds positive pairs.

The signal is deliberately simpler than MRPC's, so that every method of notebook 05 (prompt tuning
included) can learn it on a tiny *random* model in seconds:

* a positive pair is one news event told twice in different words (synonyms, reordered clauses,
  an attribution such as "officials said");
* a negative pair tells the same event, but one of its two sentences changes a fact (a number, the
  day or the direction of a move) *and* ends in a clause that adds or contradicts information
  (", but the report was later denied", ", but officials did not confirm it"...: every one of them
  contains ", but"). Such clauses never occur in positive pairs, so the bag of words of the pair
  decides the label, apart from the flipped ones;
* the sentence with the extra information is the second one in 70 % of negative pairs, the first
  in 30 % (in MRPC either sentence can carry it);
* 3 % of the labels are flipped, so no model can be perfect.

Real MRPC is much harder: its negatives often differ only by a detail, which takes the two sentences
compared word by word; a pretrained model can learn that, a tiny random one cannot.

Every sample in data/ follows this pattern: one `make_<name>.py` per file, a fixed seed, a module
docstring that says what signal the data carries, and `python data/make_<name>.py` rewrites the
file byte for byte.
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
ROWS = 1000
POSITIVE_SHARE = 0.67  # MRPC's training split is about two thirds paraphrases
EXTRA_FIRST = 0.3  # negative pairs whose *first* sentence carries the extra information
LABEL_NOISE = 0.03
OUT = Path(__file__).with_name("paraphrases.csv")

COMPANIES = ["Northwind", "Contoso", "Globex", "Initech", "Umbrella Corp", "Stark Industries",
             "Wayne Enterprises", "Acme", "Hooli", "Vandelay Industries", "Tyrell", "Cyberdyne", "Soylent",
             "Massive Dynamic"]
TARGETS = ["a software maker", "a regional bank", "a chip designer", "a drug developer", "an online retailer",
           "a mobile carrier", "a data-storage firm", "a steel producer"]
CITIES = ["Boston", "Seattle", "Denver", "Atlanta", "Chicago", "Houston", "Phoenix", "Detroit", "Miami", "Portland"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
BODIES = ["Senate", "House", "city council", "state assembly", "board of supervisors"]
BILLS = ["budget", "transport bill", "tax package", "school funding plan", "water-rights measure"]
DISEASES = ["measles", "flu", "West Nile virus", "whooping cough", "hepatitis A"]
AGENCIES = ["health department", "state health agency", "county health office"]
REGIONS = ["northern Ohio", "eastern Texas", "southern Florida", "western Oregon", "central Georgia"]

# Each event: facts drawn at random, then ways to tell it. {up}/{down}: a verb for the move.
UP = ["rose", "climbed", "gained", "jumped", "advanced"]
DOWN = ["fell", "dropped", "slid", "declined", "sank"]

# Phrases that add or contradict information: they appear in negative pairs only.
EXTRA = [
    ", but the report was later denied",
    ", but that figure was not confirmed",
    ", but officials did not confirm it",
    ", but the number was later disputed",
    ", but no official reason was given",
    ", but critics later said it was not true",
    ", the first time since {year}, but it was not confirmed",
    ", but earlier figures had suggested {other}",
]
ATTRIBUTION = ["", ", officials said", ", a spokesman said", ", according to a statement", ", the report said"]


def _facts(rng: random.Random) -> dict:
    return dict(
        company=rng.choice(COMPANIES), target=rng.choice(TARGETS), city=rng.choice(CITIES), day=rng.choice(DAYS),
        body=rng.choice(BODIES), bill=rng.choice(BILLS), disease=rng.choice(DISEASES), agency=rng.choice(AGENCIES),
        region=rng.choice(REGIONS), n=rng.randint(2, 19), price=round(rng.uniform(8, 140), 2),
        money=rng.choice([120, 250, 310, 480, 650, 900, 1200]), yes=rng.randint(51, 80), no=rng.randint(10, 45),
        jobs=rng.choice([300, 450, 800, 1200, 2500, 4000]), pct=rng.randint(2, 15), up=rng.random() < 0.5,
    )


def _move(f: dict, rng: random.Random, flip: bool = False) -> str:
    up = f["up"] != flip
    return rng.choice(UP if up else DOWN)


# Each teller takes (facts, rng, flip) and returns one sentence; flip=True changes the move's direction.
def _shares(f, rng, flip=False):
    v = _move(f, rng, flip)
    return rng.choice([
        f"{f['company']} shares {v} {f['n']} percent to ${f['price']} on {f['day']}",
        f"Shares of {f['company']} {v} {f['n']} percent on {f['day']}, closing at ${f['price']}",
        f"On {f['day']}, {f['company']} stock {v} {f['n']} percent to ${f['price']}",
        f"{f['company']}'s stock price {v} {f['n']} percent on {f['day']} to end at ${f['price']}",
    ])


def _deal(f, rng, flip=False):
    return rng.choice([
        f"{f['company']} agreed to buy {f['target']} for ${f['money']} million, the companies said on {f['day']}",
        f"On {f['day']} {f['company']} said it would acquire {f['target']} in a ${f['money']} million deal",
        f"{f['company']} will pay ${f['money']} million for {f['target']}, the two firms announced {f['day']}",
        f"In a deal worth ${f['money']} million, {f['company']} is buying {f['target']}, it said on {f['day']}",
    ])


def _court(f, rng, flip=False):
    return rng.choice([
        f"A federal judge in {f['city']} ruled on {f['day']} that {f['company']} must pay ${f['money']} million in "
        "damages",
        f"{f['company']} was ordered on {f['day']} to pay ${f['money']} million in damages by a federal judge in "
        f"{f['city']}",
        f"On {f['day']} a {f['city']} federal court told {f['company']} to pay damages of ${f['money']} million",
    ])


def _vote(f, rng, flip=False):
    verb, done = rng.choice([("approve", "approved"), ("pass", "passed"), ("adopt", "adopted")])
    return rng.choice([
        f"The {f['body']} voted {f['yes']} to {f['no']} on {f['day']} to {verb} the {f['bill']}",
        f"On {f['day']} the {f['body']} {done} the {f['bill']} by a vote of {f['yes']} to {f['no']}",
        f"By {f['yes']} votes to {f['no']}, the {f['bill']} won the approval of the {f['body']} on {f['day']}",
    ])


def _outbreak(f, rng, flip=False):
    return rng.choice([
        f"The {f['agency']} said {f['n']} new cases of {f['disease']} were reported in {f['city']} this week",
        f"{f['n']} new {f['disease']} cases were reported in {f['city']} this week, the {f['agency']} said",
        f"This week {f['city']} recorded {f['n']} new cases of {f['disease']}, according to the {f['agency']}",
    ])


def _layoffs(f, rng, flip=False):
    return rng.choice([
        f"{f['company']} said on {f['day']} it would cut {f['jobs']} jobs, about {f['pct']} percent of its workforce",
        f"About {f['pct']} percent of {f['company']}'s staff, or {f['jobs']} workers, will lose their jobs, it said "
        f"{f['day']}",
        f"On {f['day']} {f['company']} announced {f['jobs']} job cuts, roughly {f['pct']} percent of its employees",
    ])


def _storm(f, rng, flip=False):
    return rng.choice([
        f"The storm left about {f['n']},000 homes without power in {f['region']} on {f['day']}",
        f"Some {f['n']},000 households in {f['region']} lost electricity during the storm on {f['day']}",
        f"On {f['day']} about {f['n']},000 homes across {f['region']} were left without power by the storm",
    ])


TELLERS = [_shares, _deal, _court, _vote, _outbreak, _layoffs, _storm]
CHANGEABLE = {"_shares": ["n", "day", "up"], "_deal": ["money", "day"], "_court": ["money", "day"],
              "_vote": ["yes", "day"], "_outbreak": ["n"], "_layoffs": ["jobs", "day"], "_storm": ["n", "day"]}


def _changed(f: dict, tell, rng: random.Random) -> dict:
    """The same event with one fact that `tell` tells changed (a number, the day, the direction)."""
    g = dict(f)
    what = rng.choice(CHANGEABLE[tell.__name__])
    if what == "n":
        g["n"] = f["n"] + rng.choice([-1, 1]) * rng.randint(1, 3) if f["n"] > 4 else f["n"] + rng.randint(1, 4)
    elif what == "day":
        g["day"] = rng.choice([d for d in DAYS if d != f["day"]])
    elif what == "yes":
        g["yes"] = f["yes"] + rng.randint(2, 9)
    elif what == "money":
        g["money"] = f["money"] + rng.choice([50, 100, 150])
    elif what == "up":
        g["up"] = not f["up"]
    else:
        g["jobs"] = f["jobs"] * 2
    return g


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text + "."


def pair(label: int, rng: random.Random) -> tuple[str, str]:
    f = _facts(rng)
    tell = rng.choice(TELLERS)
    first = tell(f, rng) + rng.choice(ATTRIBUTION[:2])
    if label == 1:
        second = tell(f, rng) + rng.choice(ATTRIBUTION)
        return _sentence(first), _sentence(second)
    extra = rng.choice(EXTRA).format(year=rng.randint(1990, 2002),
                                     other=rng.choice(["a smaller number", "the opposite", "no change"]))
    second = tell(_changed(f, tell, rng), rng) + extra
    if rng.random() < EXTRA_FIRST:
        return _sentence(second), _sentence(first)
    return _sentence(first), _sentence(second)


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for _ in range(ROWS):
        label = int(rng.random() < POSITIVE_SHARE)
        first, second = pair(label, rng)
        if rng.random() < LABEL_NOISE:
            label = 1 - label
        rows.append((first, second, label))
    write_sample_csv(OUT, ["sentence1", "sentence2", "label"], rows)


if __name__ == "__main__":
    main()
