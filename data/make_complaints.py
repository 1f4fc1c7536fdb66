"""Write data/complaints.csv: synthetic consumer complaints shaped like the CFPB's public data.

The sample stands in for the CFPB complaint narratives (notebook 01) in the offline `smoke`
profile. Its columns carry the CFPB export's names: `Product`, `Sub-issue` (the label) and
`Consumer complaint narrative` (the text); the issue level shapes the text but is not a column. The signal is real but not
a lookup of one word:

* each sub-issue has its own cue sentences (a debt "I already paid in full", a report entry
  "is not mine"), filled with varying details, one to three of them per narrative;
* sub-issues under the same issue share that issue's sentences ("a collection agency is trying
  to collect"), so the cues that separate them are few and the confusions are realistic;
* the rest of a narrative is neutral text every complaint uses ("I called them three times",
  dates and amounts redacted as XX/XX/XXXX and {$...}), placed around the cues;
* 3 % of labels are replaced by another sub-issue of the same product (real annotations are
  noisy), so no model can be perfect.

What makes it look like real complaint data, on purpose:

* 17 sub-issues of very different frequency (170 rows down to 15), plus two sub-issues with a
  single complaint each, which cannot be spread over train, validation and test;
* about 5 % of narratives are empty or blank (consumers who did not share one);
* a few exact duplicate rows (complaints submitted twice);
* about 2 % very long narratives (2,500-3,500 characters) that any model has to truncate, some
  with their cue sentences only near the end.

Every sample in data/ follows this pattern: one `make_<name>.py` per file, a fixed seed, a module
docstring that says what signal the data carries, and `python data/make_<name>.py` rewrites the
file byte for byte.
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
LABEL_NOISE = 0.03
EMPTY_SHARE = 0.05
LONG_SHARE = 0.02
DUPLICATES = 8
OUT = Path(__file__).with_name("complaints.csv")

# product -> issue -> sub-issue -> number of complaints
CLASSES = {
    "Credit reporting": {
        "Incorrect information on your report": {
            "Information belongs to someone else": 170,
            "Account status incorrect": 120,
            "Account information incorrect": 95,
        },
        "Problem with a credit reporting company's investigation into an existing problem": {
            "Their investigation did not fix an error on your report": 110,
            "Was not notified of investigation status or results": 40,
        },
        "Improper use of your report": {
            "Credit inquiries on your report that you don't recognize": 80,
        },
    },
    "Debt collection": {
        "Attempts to collect debt not owed": {
            "Debt is not yours": 75,
            "Debt was paid": 55,
        },
        "Communication tactics": {
            "Frequent or repeated calls": 45,
        },
        "Written notification about debt": {
            "Didn't receive enough information to verify debt": 36,
        },
    },
    "Credit card": {
        "Problem with a purchase shown on your statement": {
            "Card was charged for something you did not purchase with the card": 50,
            "Credit card company isn't resolving a dispute about a purchase on your statement": 30,
        },
    },
    "Checking or savings account": {
        "Managing an account": {
            "Deposits and withdrawals": 42,
            "Banking errors": 24,
        },
        "Closing an account": {
            "Company closed your account": 28,
        },
    },
    "Student loan": {
        "Dealing with your lender or servicer": {
            "Trouble with how payments are being handled": 20,
            "Received bad information about your loan": 15,
        },
    },
}
# Real sub-issues that occur once in the sample: they exist, but nothing can be measured on them.
SINGLETONS = {
    ("Debt collection", "Threatened to contact someone or share information improperly",
     "Talked to a third-party about your debt"):
        "The collector called my employer and told my manager about my debt of {amount}. "
        "They also left a message with my neighbor describing what I owe.",
    ("Credit reporting", "Problem with a credit reporting company's investigation into an existing problem",
     "Problem with personal statement of dispute"):
        "I asked the bureau to add my personal statement of dispute to the file on XX/XX/XXXX. "
        "The statement is missing from my report and they refuse to add it.",
}

ISSUE_SENTENCES = {
    "Incorrect information on your report": [
        "There is incorrect information on my credit report from {bureau}.",
        "My {bureau} report shows an entry that is wrong.",
        "I pulled my credit report on XX/XX/XXXX and found errors.",
    ],
    "Problem with a credit reporting company's investigation into an existing problem": [
        "I filed a dispute with {bureau} on XX/XX/XXXX.",
        "I sent {bureau} a dispute letter by certified mail.",
    ],
    "Improper use of your report": [
        "Someone has been pulling my credit without a permissible purpose.",
        "My report from {bureau} was accessed without my knowledge.",
    ],
    "Attempts to collect debt not owed": [
        "A collection agency, {collector}, is trying to collect {amount} from me.",
        "{collector} keeps demanding payment of {amount}.",
    ],
    "Communication tactics": [
        "{collector} is a debt collector that will not leave me alone.",
    ],
    "Written notification about debt": [
        "I received a collection notice from {collector} for {amount}.",
    ],
    "Problem with a purchase shown on your statement": [
        "My {bank} credit card statement shows a charge of {amount} from {merchant}.",
        "There is a transaction on my card statement from {merchant} for {amount}.",
    ],
    "Managing an account": [
        "I have a checking account with {bank}.",
        "My savings account at {bank} had a problem on XX/XX/XXXX.",
    ],
    "Closing an account": [
        "I had banked with {bank} for {years} years.",
    ],
    "Dealing with your lender or servicer": [
        "My student loans are serviced by {servicer}.",
        "I have been repaying my federal student loans through {servicer}.",
    ],
}

CUES = {
    "Information belongs to someone else": [
        "The account is not mine and I never opened it.",
        "I do not recognize this account, it belongs to someone else.",
        "This must be identity theft because I never applied for this account.",
        "The address and the name on this account are not mine.",
    ],
    "Account status incorrect": [
        "The account is reported as {late} days late but I paid on time every month.",
        "It shows the account as delinquent although it was never late.",
        "The status says charged off but the account is current.",
        "They report a late payment for XX/XX/XXXX even though my payment was on time.",
    ],
    "Account information incorrect": [
        "The balance is wrong, it shows {amount} instead of what I owe.",
        "The credit limit listed is incorrect.",
        "The date opened and the high balance on the account are incorrect.",
        "My payment history shows the wrong balance and the wrong limit.",
    ],
    "Their investigation did not fix an error on your report": [
        "They say the information was verified but it is still wrong.",
        "After the investigation the error is still on my report.",
        "Their reinvestigation came back verified without looking at my documents.",
        "The results of the investigation did not correct the mistake.",
    ],
    "Was not notified of investigation status or results": [
        "It has been more than {days} days and I have heard nothing back about my dispute.",
        "I never received the results of the investigation.",
        "Nobody told me the status of my dispute.",
    ],
    "Credit inquiries on your report that you don't recognize": [
        "There is a hard inquiry from {lender} that I did not authorize.",
        "I see several inquiries on my report that I don't recognize.",
        "I never applied for credit with {lender} but they made an inquiry.",
    ],
    "Debt is not yours": [
        "This is not my debt and I never had an account with the original creditor.",
        "I have no idea what this debt is for, it is not mine.",
        "The debt belongs to a person with a similar name.",
    ],
    "Debt was paid": [
        "I already paid this debt in full on XX/XX/XXXX and I have the receipt.",
        "The account was settled and paid off years ago.",
        "I paid the balance to the original creditor and have proof of payment.",
    ],
    "Frequent or repeated calls": [
        "They call me {calls} times a day, every day, including weekends.",
        "The calls keep coming to my cell phone and my work phone.",
        "I get repeated calls early in the morning and late at night.",
    ],
    "Didn't receive enough information to verify debt": [
        "I requested validation of the debt and they never sent proof.",
        "They did not provide any documents to verify that I owe this.",
        "I asked for the original contract and a validation letter but received nothing.",
    ],
    "Card was charged for something you did not purchase with the card": [
        "I did not make this purchase and my card was in my wallet the whole time.",
        "This is a fraudulent charge, I have never shopped at {merchant}.",
        "Someone used my card number for a purchase I did not authorize.",
    ],
    "Credit card company isn't resolving a dispute about a purchase on your statement": [
        "I disputed the purchase because the merchandise never arrived, but the card company sided with the merchant.",
        "The item was returned and the merchant agreed to a refund, yet my dispute was denied.",
        "The dispute has been open for months and the card company will not resolve it.",
    ],
    "Deposits and withdrawals": [
        "My deposit of {amount} was placed on hold for {days} days.",
        "The ATM did not dispense the cash but the withdrawal was taken from my account.",
        "A mobile deposit never showed up in my balance.",
    ],
    "Banking errors": [
        "The bank posted the same transaction twice.",
        "A transfer was applied to the wrong account by the bank's error.",
        "The bank made an error and debited the wrong amount.",
    ],
    "Company closed your account": [
        "The bank closed my account without any notice or explanation.",
        "I received a letter that my account was closed and my funds would be mailed by check.",
        "They shut down my account and will not say why.",
    ],
    "Trouble with how payments are being handled": [
        "My extra payments were applied to interest instead of the principal.",
        "The servicer applied my payment to the wrong loan.",
        "My autopay was processed late and they charged me a late fee.",
    ],
    "Received bad information about your loan": [
        "The representative told me I qualified for forgiveness, which turned out to be false.",
        "I was given wrong information about my repayment plan options.",
        "They told me my loans were in deferment but they were not.",
    ],
}

NEUTRAL = [
    "I have called them {calls} times about this.",
    "This has been going on since XX/XX/XXXX.",
    "I spoke with a representative named XXXX who could not help me.",
    "Each time I call I am transferred to another department.",
    "I have attached copies of my letters and statements.",
    "I am asking the CFPB to look into this.",
    "Please help me resolve this issue.",
    "This is affecting my ability to get a mortgage.",
    "I have been a customer for {years} years.",
    "I sent a letter on XX/XX/XXXX and followed up on XX/XX/XXXX.",
    "I am very frustrated with how this company treats its customers.",
    "They told me someone would call me back within {days} days.",
    "No one has called me back.",
    "I want this corrected as soon as possible.",
]
# Long narratives repeat this kind of background story before getting to the point.
BACKGROUND = [
    "I want to explain the whole history of this problem so that it is clear what happened.",
    "In XXXX I moved to a new address in XXXX and updated my information with every company.",
    "At that time I was working two jobs and taking care of my mother, who was ill.",
    "I kept every letter, every statement and notes of every phone call in a folder.",
    "On XX/XX/XXXX I called again and waited on hold for more than an hour.",
    "The first representative said the problem was fixed, the second said there was no record of my call.",
    "I wrote down the reference number XXXX and the name of the supervisor, XXXX.",
    "I also contacted my state attorney general and the Better Business Bureau.",
    "My family has been affected by the stress of this situation for months.",
    "I asked for everything in writing and they refused to send anything.",
]
FILL = {
    "bureau": ["Equifax", "Experian", "TransUnion", "the credit bureau"],
    "collector": ["a collection agency", "XXXX Recovery", "XXXX Collections", "the debt collector"],
    "bank": ["my bank", "XXXX Bank", "the bank", "XXXX Credit Union"],
    "lender": ["XXXX Auto", "a lender", "XXXX Financial", "a credit card company"],
    "merchant": ["an online store", "XXXX", "a merchant", "a travel site"],
    "servicer": ["XXXX", "my servicer", "the loan servicer"],
    "amount": ["{$120.00}", "{$450.00}", "{$1300.00}", "{$2700.00}", "{$89.00}", "{$5000.00}"],
    "late": ["30", "60", "90", "120"],
    "days": ["10", "30", "45", "60", "90"],
    "calls": ["three", "five", "ten", "many"],
    "years": ["2", "5", "10", "15"],
}


def fill(template: str, rng: random.Random) -> str:
    out = template
    for key, options in FILL.items():
        while "{" + key + "}" in out:
            out = out.replace("{" + key + "}", rng.choice(options), 1)
    return out


def narrative(issue: str, sub_issue: str, rng: random.Random, long: bool) -> str:
    cues = rng.sample(CUES[sub_issue], k=min(len(CUES[sub_issue]), rng.randint(1, 3)))
    sentences = [fill(rng.choice(NEUTRAL), rng) for _ in range(rng.randint(1, 3))]
    for cue in cues:
        sentences.insert(rng.randint(0, len(sentences)), fill(cue, rng))
    opening = fill(rng.choice(ISSUE_SENTENCES[issue]), rng)
    if long:  # a long story; in half of them the point comes only at the end, where truncation cuts it
        story = [fill(rng.choice(BACKGROUND + NEUTRAL), rng) for _ in range(rng.randint(30, 42))]
        if rng.random() < 0.5:
            return " ".join([opening] + story + sentences)
        return " ".join([opening] + sentences + story)
    return " ".join([opening] + sentences)


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    siblings = {}  # product -> its sub-issues, for label noise within a product
    for product, issues in CLASSES.items():
        for issue, subs in issues.items():
            for sub_issue, count in subs.items():
                siblings.setdefault(product, []).append((issue, sub_issue))
                for _ in range(count):
                    rows.append([product, issue, sub_issue])
    out = []
    for product, issue, sub_issue in rows:
        roll = rng.random()
        if roll < EMPTY_SHARE:
            text = rng.choice(["", "", " "])  # no narrative shared (or only a blank)
        else:
            text = narrative(issue, sub_issue, rng, long=rng.random() < LONG_SHARE / (1 - EMPTY_SHARE))
        if rng.random() < LABEL_NOISE:
            issue, sub_issue = rng.choice(siblings[product])
        out.append([product, sub_issue, text])
    for (product, issue, sub_issue), template in SINGLETONS.items():
        out.append([product, sub_issue, fill(template, rng)])
    out += [list(r) for r in rng.sample([r for r in out if r[2].strip()], DUPLICATES)]  # submitted twice
    rng.shuffle(out)
    write_sample_csv(OUT, ["Product", "Sub-issue", "Consumer complaint narrative"], out)


if __name__ == "__main__":
    main()
