"""Hub model and dataset cards for a run's final model and exported labels, from its ledger."""

from apl.cards.dataset_card import dataset_card, dataset_card_text
from apl.cards.facts import RunFacts, gather_facts, public_config, public_name
from apl.cards.model_card import model_card, model_card_text

__all__ = [
    "RunFacts",
    "dataset_card",
    "dataset_card_text",
    "gather_facts",
    "model_card",
    "model_card_text",
    "public_config",
    "public_name",
]
