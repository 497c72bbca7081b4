"""A small Python client for the judgecal HTTP service; it speaks the service's own models."""

from __future__ import annotations

from typing import Any

import httpx

from judgecal.errors import JudgecalHTTPError
from judgecal.schemas import JudgeResponse, RubricOut, RunStatus


class JudgecalClient:
    """``JudgecalClient("http://127.0.0.1:8000", api_key)``; every method is one request."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 300.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise JudgecalHTTPError(response.status_code, error["type"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise JudgecalHTTPError(
                    response.status_code, "http_error", response.text[:200]
                ) from None
        return response.json() if response.content else None

    def judge(
        self, rubric: str, model: str, items: list[dict[str, Any]], **options: Any
    ) -> JudgeResponse:
        """Score responses: items of ``{prompt, response, reference?, id?}``."""
        return JudgeResponse.model_validate(
            self._call(
                "POST",
                "/v1/judge",
                {"rubric": rubric, "model": model, "items": items, "options": options},
            )
        )

    def compare(
        self, rubric: str, model: str, items: list[dict[str, Any]], **options: Any
    ) -> JudgeResponse:
        """Compare pairs in both orders: items of ``{prompt, response_a, response_b, id?}``."""
        return JudgeResponse.model_validate(
            self._call(
                "POST",
                "/v1/compare",
                {"rubric": rubric, "model": model, "items": items, "options": options},
            )
        )

    def rewards(
        self, query: list[str], prompts: list[str], labels: list[str | None] | None = None
    ) -> list[float | None]:
        return list(
            self._call(
                "POST", "/v1/rewards", {"query": query, "prompts": prompts, "labels": labels}
            )["rewards"]
        )

    def submit_run(
        self, rubric: str, model: str, dataset: str, items: list[dict[str, Any]], **options: Any
    ) -> RunStatus:
        return RunStatus.model_validate(
            self._call(
                "POST",
                "/v1/runs",
                {
                    "rubric": rubric,
                    "model": model,
                    "dataset": dataset,
                    "items": items,
                    "options": options,
                },
            )
        )

    def run_status(self, run_id: str) -> RunStatus:
        return RunStatus.model_validate(self._call("GET", f"/v1/runs/{run_id}"))

    def report(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/runs/{run_id}/report"))

    def rubrics(self) -> list[RubricOut]:
        return [RubricOut.model_validate(r) for r in self._call("GET", "/v1/rubrics")]

    def post_rubric(self, rubric: dict[str, Any]) -> RubricOut:
        return RubricOut.model_validate(self._call("POST", "/v1/rubrics", rubric))

    def create_key(self, name: str, *, admin: bool = False) -> dict[str, Any]:
        """Needs an admin key."""
        return dict(self._call("POST", "/v1/admin/keys", {"name": name, "admin": admin}))

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/admin/keys"))

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/v1/admin/keys/{key_id}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JudgecalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
