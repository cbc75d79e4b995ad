"""Starting the workflow that keeps an ended subscription's unpaid invoice retried (R11)."""
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.subscription import DUNNING_WORKFLOW, DunningInput, dunning_workflow_id


class DunningActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn
    async def start_dunning(self, request: DunningInput) -> None:
        """Idempotent: a retry finds the workflow running (or already finished) and starts none."""
        try:
            await self._client.start_workflow(
                DUNNING_WORKFLOW, request, id=dunning_workflow_id(request.dunning.invoice_id),
                task_queue=self._task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"retries of unpaid invoice {request.dunning.number} · {request.client_id} "
                               f"· paid by {request.payer.label}",
            )
        except WorkflowAlreadyStartedError:
            pass  # it ran and finished: the invoice is settled one way or the other
