"""A small client of the MTurk requester API: one method per endpoint, all through :meth:`MTurkService._call`.

The boto3 ``mturk`` client is made lazily (``sandbox`` picks the sandbox endpoint), so tests can hand
in a client wrapped by botocore's ``Stubber`` and no real AWS call is ever made by them.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
REGION = "us-east-1"
#: MTurk's way to end a HIT now: an expiry in the past.
EXPIRE_NOW = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)


class MTurkService:
    """Requester endpoints of MTurk; ``client`` is a boto3 ``mturk`` client (made on first use)."""

    def __init__(self, *, sandbox: bool = True, client: Any = None) -> None:
        self.sandbox = sandbox
        self._client = client

    @property
    def endpoint(self) -> str:
        return SANDBOX_ENDPOINT if self.sandbox else PRODUCTION_ENDPOINT

    @classmethod
    def make_client(cls, sandbox: bool) -> Any:
        # deferred: loads boto3
        import boto3

        return boto3.client("mturk", region_name=REGION,
                            endpoint_url=SANDBOX_ENDPOINT if sandbox else PRODUCTION_ENDPOINT)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = type(self).make_client(self.sandbox)
        return self._client

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        log.info("mturk %s %s", operation, {k: v for k, v in params.items() if k != "Question"})
        return getattr(self.client, operation)(**params)

    # --- one method per endpoint -----------------------------------------------------------
    def create_hit(self, **params: Any) -> dict[str, Any]:
        return self._call("create_hit", **params)["HIT"]

    def list_hits(self, next_token: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"MaxResults": 100}
        if next_token:
            params["NextToken"] = next_token
        return self._call("list_hits", **params)

    def update_expiration_for_hit(self, hit_id: str, expire_at: dt.datetime = EXPIRE_NOW) -> None:
        self._call("update_expiration_for_hit", HITId=hit_id, ExpireAt=expire_at)

    def create_additional_assignments_for_hit(self, hit_id: str, n: int, token: str) -> None:
        self._call("create_additional_assignments_for_hit", HITId=hit_id, NumberOfAdditionalAssignments=n,
                   UniqueRequestToken=token)

    def list_assignments_for_hit(self, hit_id: str, next_token: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"HITId": hit_id, "MaxResults": 100,
                                  "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}
        if next_token:
            params["NextToken"] = next_token
        return self._call("list_assignments_for_hit", **params)

    def get_assignment(self, assignment_id: str) -> dict[str, Any]:
        return self._call("get_assignment", AssignmentId=assignment_id)["Assignment"]

    def approve_assignment(self, assignment_id: str, feedback: str = "") -> None:
        params: dict[str, Any] = {"AssignmentId": assignment_id}
        if feedback:
            params["RequesterFeedback"] = feedback[:1024]
        self._call("approve_assignment", **params)

    def reject_assignment(self, assignment_id: str, feedback: str) -> None:
        self._call("reject_assignment", AssignmentId=assignment_id, RequesterFeedback=feedback[:1024])

    def send_bonus(self, *, worker_id: str, assignment_id: str, dollars: str, reason: str, token: str) -> None:
        self._call("send_bonus", WorkerId=worker_id, BonusAmount=dollars, AssignmentId=assignment_id,
                   Reason=reason[:1024], UniqueRequestToken=token)

    def create_worker_block(self, worker_id: str, reason: str) -> None:
        self._call("create_worker_block", WorkerId=worker_id, Reason=reason[:1024] or "blocked by the requester")
