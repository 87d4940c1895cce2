"""The false-hit guard alone: which differences between two texts forbid one's cached answer
from serving the other, and which harmless ones (case, punctuation, pleasantries, typos,
possessives, number spelling) do not."""

from __future__ import annotations

import pytest

from gatewise.cache.guard import features, mismatch


@pytest.mark.parametrize(("a", "b", "why"), [
    ("Cancel my order 1234", "Cancel my order 1243", "numbers"),
    ("Remind me at 7am", "Remind me at 8am", "numbers"),
    ("Transfer £50 to savings", "Transfer £500 to savings", "numbers"),
    ("Cancel my subscription", "Don't cancel my subscription", "negation"),
    ("Which plans include calls?", "Which plans do not include calls?", "negation"),
    ("Can I pay with a card?", "Can I pay without a card?", "negation"),
    ("What is the capital of France?", "What is the capital of Spain?", "named targets"),
    ("Send the report to alice@example.com", "Send the report to bob@example.com",
     "named targets"),
    ("Summarise https://a.example/x", "Summarise https://b.example/y", "named targets"),
    ('Rename the file "draft.txt"', 'Rename the file "final.txt"', "named targets"),
    ("What does parse_config return?", "What does load_config return?", "named targets"),
    ("Is ibuprofen safe with alcohol?", "Is ibuprofen unsafe with alcohol?", "opposites"),
    ("How do I turn on two-factor authentication?",
     "How do I turn off two-factor authentication?", "opposites"),
    ("Is the clinic open on Sundays?", "Is the clinic closed on Sundays?", "opposites"),
    ("Move money from savings to my current account",
     "Move money from my current account to savings", "direction"),
    ("How much holiday do full-time staff get?", "How much holiday do part-time staff get?",
     "opposites"),
    ("What's the check-in time?", "What's the check-out time?", "opposites"),
    ("How do I get a refund on a gift?", "How do I get a refund on a gift card?",
     "changed words"),
    # Things of one kind are not synonyms, however close their embeddings.
    ("Does the hotel have a pool?", "Does the hotel have a gym?", "changed words"),
    ("Is the chicken dish gluten-free?", "Is the beef dish gluten-free?", "changed words"),
    ("What vaccines does my puppy need?", "What vaccines does my kitten need?",
     "changed words"),
    ("How do I claim expenses?", "How do I approve expenses?", "changed words"),
    # A synonym of one word does not excuse its antonym: "activate" is "enable", not "disable".
    ("How do I activate my card?", "How do I disable my card?", "opposites"),
])
def test_a_difference_that_changes_the_answer_is_refused(a: str, b: str, why: str) -> None:
    assert mismatch(a, b) == why
    assert mismatch(b, a) == why  # symmetric


@pytest.mark.parametrize(("a", "b"), [
    ("What is the capital of France?", "what is the capital of france"),
    ("What is the capital of France?", "What's France's capital?"),
    ("How do I reset my password?", "Hi! How do I reset my password? Thanks"),
    ("Where can I find my invoice history?", "Where can I find my invioce history?"),
    ("Do you accept Apple Pay?", "DO YOU ACCEPT APPLE PAY?"),
    ("Cancel my order 1234", "Please cancel my order 1234"),
    ("I need two tickets", "I need 2 tickets"),
    ("What's the speed limit in the UK?", "what's the speed limit in the uk"),
])
def test_a_harmless_difference_is_let_through(a: str, b: str) -> None:
    assert mismatch(a, b) is None


@pytest.mark.parametrize(("a", "b"), [
    # Inflections fold to one lemma.
    ("How do I cancel my booking?", "My booking was cancelled, what now?"),
    ("What documents do I need?", "What documents are needed?"),
    ("Does it support wireless charging?", "Does it support charging wirelessly?"),
    # Everyday synonyms, and two-word verbs, are one sense.
    ("What is the fastest way to learn touch typing?",
     "What's the quickest way to learn touch typing?"),
    ("How do I switch energy supplier?", "How do I change energy supplier?"),
    ("How do I set up a standing order?", "How do I create a standing order?"),
    ("How do I register with a GP surgery?", "How do I sign up with a GP surgery?"),
    ("Where can I purchase a gift card?", "Where can I buy a gift card?"),
    # A typo of a synonym group's word still counts as the word.
    ("What is the baggage allowance?", "What is the bagage allowence?"),
])
def test_a_lemma_or_synonym_is_the_same_word(a: str, b: str) -> None:
    assert mismatch(a, b) is None
    assert mismatch(b, a) is None


def test_features_are_computed_once_and_compared_as_given() -> None:
    fa, fb = features("Cancel order 1234"), features("cancel order 1234")
    assert fa.numbers == ("1234",) and fa.negations == 0
    assert mismatch(fa, fb) is None
