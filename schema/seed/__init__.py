"""The demo data set behind `fieldsync seed --demo` (crm-domain.md §7).

`generator` builds the data deterministically and without a database; `loader` writes it
through the one write path. The planted patterns (tiers, basket rules, seasonality,
churn) are returned by `DemoGenerator.patterns()` and written to a JSON file for tests.
"""

from schema.seed.generator import ADMIN_EMAIL, DEMO_PASSWORD, SIZES, DemoGenerator, SeedSize
from schema.seed.loader import DemoLogin, SeedError, SeedSummary, seed_demo

__all__ = [
    "ADMIN_EMAIL", "DEMO_PASSWORD", "SIZES", "DemoGenerator", "DemoLogin", "SeedError",
    "SeedSize", "SeedSummary", "seed_demo",
]
