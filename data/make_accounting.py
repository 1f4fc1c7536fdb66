"""Write data/accounting.csv: bookkeeping questions whose answers can be checked, in `input`/`output`.

The sample stands in for the private question-answer pairs of notebook 03's recipe (accounting-domain
supervised fine-tuning). Two kinds of rows:

* journal-entry tasks (about 90 %): a business transaction told in words ("On 3 March, Maple Bakery
  bought office supplies for $450, paying cash.") and its double-entry journal entry, one line per
  account, debits first:

      Dr Supplies 450.00
      Cr Cash 450.00

  Amounts are written with two decimals and thousands separators (12,500.00). 24 kinds of
  transaction, from two-line purchases to compound entries that need arithmetic (part cash part
  credit, a loan repaid with interest, a sale with sales tax). Debits always equal credits.
* concept questions (about 10 %, each asked once): normal balance, account type, financial
  statement, whether a debit increases an account. Short answers ("Credit", "Liability").

The signal is real and checkable: the accounts follow from the kind of transaction (whatever its
wording), the amounts from the numbers in the text. `helpers.sft.parse_entry` reads an answer back into
(side, account, amount) lines, so a generated entry can be scored by exact match.

`python data/make_accounting.py` rewrites the file byte for byte (fixed seed). `generate(n, seed)` makes
as many rows as you like; the notebook's `full` profile uses it to scale the data up.
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
ROWS = 900
CONCEPT_SHARE = 0.2
OUT = Path(__file__).with_name("accounting.csv")

COMPANIES = ["Maple Bakery", "Northwind Traders", "Blue Fern Studio", "Harbor Bikes", "Kestrel Consulting",
             "Lotus Dental", "Oak & Iron Joinery", "Pixel Print Shop", "Riverbend Farm", "Summit Tutoring",
             "Cedar Cafe", "Atlas Cleaning", "Juniper Books", "Brightside Plumbing", "Nova Fitness"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

# account -> (type, normal balance, statement)
ACCOUNTS = {
    "Cash": ("Asset", "Debit", "Balance sheet"),
    "Accounts Receivable": ("Asset", "Debit", "Balance sheet"),
    "Supplies": ("Asset", "Debit", "Balance sheet"),
    "Inventory": ("Asset", "Debit", "Balance sheet"),
    "Prepaid Insurance": ("Asset", "Debit", "Balance sheet"),
    "Equipment": ("Asset", "Debit", "Balance sheet"),
    "Accumulated Depreciation": ("Contra asset", "Credit", "Balance sheet"),
    "Accounts Payable": ("Liability", "Credit", "Balance sheet"),
    "Notes Payable": ("Liability", "Credit", "Balance sheet"),
    "Unearned Revenue": ("Liability", "Credit", "Balance sheet"),
    "Sales Tax Payable": ("Liability", "Credit", "Balance sheet"),
    "Owner's Capital": ("Equity", "Credit", "Balance sheet"),
    "Owner's Drawings": ("Equity", "Debit", "Statement of owner's equity"),
    "Service Revenue": ("Revenue", "Credit", "Income statement"),
    "Sales Revenue": ("Revenue", "Credit", "Income statement"),
    "Wages Expense": ("Expense", "Debit", "Income statement"),
    "Rent Expense": ("Expense", "Debit", "Income statement"),
    "Utilities Expense": ("Expense", "Debit", "Income statement"),
    "Advertising Expense": ("Expense", "Debit", "Income statement"),
    "Depreciation Expense": ("Expense", "Debit", "Income statement"),
    "Supplies Expense": ("Expense", "Debit", "Income statement"),
    "Insurance Expense": ("Expense", "Debit", "Income statement"),
    "Interest Expense": ("Expense", "Debit", "Income statement"),
}

# Two-line entries: (debit account, credit account, wordings). {co} company, {a} amount.
SIMPLE = [
    ("Supplies", "Cash", ["{co} bought office supplies for {a}, paying cash.",
                          "{co} paid {a} in cash for printer paper and other supplies.",
                          "Supplies costing {a} were purchased by {co} and paid immediately."]),
    ("Equipment", "Accounts Payable", ["{co} bought a new machine for {a} on credit.",
                                       "{co} purchased equipment worth {a}, to be paid next month.",
                                       "Equipment of {a} was delivered to {co}; the invoice is unpaid."]),
    ("Cash", "Service Revenue", ["{co} performed services for a client and received {a} in cash.",
                                 "A customer paid {co} {a} cash for work completed today.",
                                 "{co} earned {a} from services and was paid on the spot."]),
    ("Accounts Receivable", "Service Revenue", ["{co} completed a job for {a} and sent the customer an invoice.",
                                                "{co} billed a client {a} for services, payment due in 30 days.",
                                                "Services of {a} were provided by {co} on account."]),
    ("Cash", "Accounts Receivable", ["{co} collected {a} from a customer who owed it money.",
                                     "A client paid {co} the {a} invoice sent last month.",
                                     "{co} received {a} in settlement of an account receivable."]),
    ("Wages Expense", "Cash", ["{co} paid employee wages of {a}.",
                               "Staff salaries of {a} were paid in cash by {co}.",
                               "{co} paid {a} to its workers for the week."]),
    ("Rent Expense", "Cash", ["{co} paid {a} rent for the month.",
                              "The monthly office rent of {a} was paid by {co}.",
                              "{co} paid its landlord {a} for this month's rent."]),
    ("Cash", "Owner's Capital", ["The owner invested {a} of personal cash in {co}.",
                                 "{co} received {a} from its owner as a capital contribution.",
                                 "The owner of {co} deposited {a} into the business account as an investment."]),
    ("Cash", "Notes Payable", ["{co} borrowed {a} from the bank, signing a note.",
                               "{co} took out a bank loan of {a}.",
                               "A bank lent {co} {a} against a promissory note."]),
    ("Accounts Payable", "Cash", ["{co} paid a supplier {a} that it owed.",
                                  "{co} settled {a} of accounts payable in cash.",
                                  "{co} paid the {a} invoice from a vendor received last month."]),
    ("Owner's Drawings", "Cash", ["The owner withdrew {a} cash from {co} for personal use.",
                                  "The owner of {co} took {a} out of the business for herself.",
                                  "{co} paid {a} for the owner's personal expenses."]),
    ("Prepaid Insurance", "Cash", ["{co} paid {a} for a one-year insurance policy in advance.",
                                   "An insurance premium of {a} covering the next twelve months was paid by {co}."]),
    ("Cash", "Unearned Revenue", ["{co} received a {a} deposit from a customer for work to be done next month.",
                                  "A client paid {co} {a} in advance for future services."]),
    ("Utilities Expense", "Accounts Payable", ["{co} received an electricity bill of {a}, to be paid later.",
                                               "The water and power bill of {a} arrived at {co}; it is not yet paid."]),
    ("Depreciation Expense", "Accumulated Depreciation", ["{co} recorded depreciation of {a} on its equipment.",
                                                          "Month-end: depreciation on {co}'s machines is {a}."]),
    ("Unearned Revenue", "Service Revenue", ["{co} completed {a} of work that customers had paid for in advance.",
                                             "Of the deposits received earlier, {co} has now earned {a}."]),
    ("Supplies Expense", "Supplies", ["A count shows {co} used {a} of supplies this month.",
                                      "{co} used up supplies costing {a} during the period."]),
    ("Insurance Expense", "Prepaid Insurance", ["{a} of {co}'s prepaid insurance expired this month.",
                                                "{co} recognised {a} of insurance cover used up."]),
    ("Inventory", "Accounts Payable", ["{co} bought goods for resale worth {a} on credit.",
                                       "{co} purchased {a} of merchandise from a wholesaler on account."]),
    ("Advertising Expense", "Cash", ["{co} paid {a} for online advertising.",
                                     "A newspaper advertisement costing {a} was paid in cash by {co}."]),
]


def money(value: float) -> str:
    """An amount as written in a question: $1,250 or $1,250.50."""
    return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"


def entry(lines) -> str:
    """The answer: one `Dr|Cr Account amount` line per account, debits first."""
    lines = sorted(lines, key=lambda line: line[0] != "Dr")
    return "\n".join(f"{side} {account} {amount:,.2f}" for side, account, amount in lines)


def _amount(rng: random.Random, low=50, high=20000) -> float:
    value = rng.choice([rng.randrange(low, high, 5), rng.randrange(low, high, 50), rng.randrange(low, high)])
    if rng.random() < 0.15:
        value += rng.randrange(1, 100) / 100
    return float(value)


def _when(rng: random.Random) -> str:
    return f"On {rng.randint(1, 28)} {rng.choice(MONTHS)}, "


def journal_task(rng: random.Random) -> tuple[str, str]:
    co = rng.choice(COMPANIES)
    kind = rng.random()
    if kind < 0.8:  # a two-line entry
        debit, credit, wordings = rng.choice(SIMPLE)
        a = _amount(rng)
        text = rng.choice(wordings).format(co=co, a=money(a))
        lines = [("Dr", debit, a), ("Cr", credit, a)]
    else:  # a compound entry that needs arithmetic
        compound = rng.randrange(4)
        if compound == 0:
            total = float(rng.randrange(2000, 30000, 100))
            paid = float(rng.randrange(500, int(total) - 100, 100))
            text = (f"{co} bought equipment costing {money(total)}, paying {money(paid)} in cash "
                    "and owing the rest to the supplier.")
            lines = [("Dr", "Equipment", total), ("Cr", "Cash", paid), ("Cr", "Accounts Payable", total - paid)]
        elif compound == 1:
            principal = float(rng.randrange(1000, 20000, 100))
            interest = float(rng.randrange(20, 900, 5))
            text = f"{co} repaid {money(principal)} of its bank loan plus {money(interest)} of interest, in cash."
            lines = [("Dr", "Notes Payable", principal), ("Dr", "Interest Expense", interest),
                     ("Cr", "Cash", principal + interest)]
        elif compound == 2:
            net = float(rng.randrange(100, 8000, 10))
            rate = rng.choice([5, 8, 10])
            tax = round(net * rate / 100, 2)
            text = f"{co} sold goods for {money(net)} plus {rate}% sales tax, and the customer paid cash."
            lines = [("Dr", "Cash", net + tax), ("Cr", "Sales Revenue", net), ("Cr", "Sales Tax Payable", tax)]
        else:
            total = float(rng.randrange(1000, 15000, 50))
            paid = float(rng.randrange(100, int(total) - 50, 50))
            text = (f"{co} completed a {money(total)} job; the customer paid {money(paid)} now "
                    "and will pay the rest next month.")
            lines = [("Dr", "Cash", paid), ("Dr", "Accounts Receivable", total - paid),
                     ("Cr", "Service Revenue", total)]
    if rng.random() < 0.5 and not text.startswith(("Month-end", "A count")):
        text = _when(rng) + (text if text.startswith(co) else text[0].lower() + text[1:])
    return text, entry(lines)


def concept_task(rng: random.Random) -> tuple[str, str]:
    account = rng.choice(list(ACCOUNTS))
    kind, normal, statement = ACCOUNTS[account]
    question = rng.randrange(4)
    if question == 0:
        return f"What is the normal balance of {account}?", normal
    if question == 1:
        return f"What type of account is {account}?", kind
    if question == 2:
        return f"On which financial statement is {account} reported?", statement
    return f"Does a debit increase or decrease {account}?", "Increase" if normal == "Debit" else "Decrease"


def generate(n: int = ROWS, seed: int = SEED, concept_share: float = CONCEPT_SHARE) -> list[dict]:
    """`n` rows of {'input', 'output'}, distinct inputs, reproducible from `seed`."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        text, answer = concept_task(rng) if rng.random() < concept_share else journal_task(rng)
        if text in seen:  # every input once: no question is both in training and in the test rows
            continue
        seen.add(text)
        rows.append({"input": text, "output": answer})
    return rows


def main() -> None:
    rows = generate()
    write_sample_csv(OUT, ["input", "output"], [(r["input"], r["output"]) for r in rows], lineterminator="\n")


if __name__ == "__main__":
    main()
