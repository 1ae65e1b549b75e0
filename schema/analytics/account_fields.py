"""Analytics fields for the `Account` type, to be wired on `schema/graphql/types.py`.

`Account.segment` already means the sales channel, so the RFM segment is `rfmScore`
(scores and segment). It reads the company-wide RFM model as of yesterday
(schema.analytics.models): no statement at all once the model is fitted, however
many accounts a page shows.
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.analytics import gql_common as G
from schema.analytics.gql_customers import RfmScoreType, rfm_score
from schema.analytics.models import rfm_model


async def account_rfm_score(info: Info, account_id: strawberry.ID) -> RfmScoreType | None:
    """RFM scores and segment of an account the caller already sees (as of yesterday)."""
    key = G.required_uid(account_id)
    model = await G.serialized(info, lambda: rfm_model(info.context.session, G.today()))
    score = model.scores.get(key)
    return None if score is None else rfm_score(score)
