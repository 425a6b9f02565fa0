"""The web console's pages and forms, on both backends, through the app as a browser sees
it (HTML): the task list with its filters, pages and live rows; a task's page (a failed
task says where and why, what it was given, each step); the flows and the form generated
from a flow's input, which starts tasks as `POST /tasks` does and shows refused input next
to its fields; the validate page; 404 and 503 pages; the headers every page carries; and
hostile input. Signing in is in `test_console_access.py`."""

from __future__ import annotations

import html
import re
import uuid
from typing import Final

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from taskrunner.errors import StoreUnavailableError
from taskrunner.service import TaskService

SAME_ORIGIN: Final = {"Origin": "http://testserver"}
BROKEN_FLOW: Final = (
    "name: broken\nstart: echo\nstates:\n  echo:\n    type: task\n    tool: echo\n"
    "    args: {text: hi}\n    next: ad\n  add: {type: succeed}\n"
)


def text_of(response: Response) -> str:
    """The page's visible text, tags removed, spaces folded."""
    body = re.sub(r"<(script|style|head)\b.*?</\1>", " ", response.text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def start(client: TestClient, flow: str, fields: dict[str, str], mode: str = "wait") -> Response:
    data = {f"input.{name}": value for name, value in fields.items()} | {"mode": mode}
    return client.post(
        f"/ui/flows/{flow}/tasks", data=data, headers=SAME_ORIGIN, follow_redirects=False
    )


def started_id(response: Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/ui/tasks/")
    return location.removeprefix("/ui/tasks/")


def test_home_leads_to_the_task_list_and_every_page_has_the_layout(client: TestClient) -> None:
    response = client.get("/ui", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/tasks"
    for path in ("/ui/tasks", "/ui/flows", "/ui/flows/echo_add", "/ui/validate"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self';" in csp
        assert '<a class="skip-link" href="#main">' in page.text
        assert '<main id="main"' in page.text
        for nav in ("Tasks", "Flows", "Validate", "API docs"):
            assert f">{nav}</a>" in page.text
        # No inline script and no event handler attribute: the policy would block them.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
        assert not re.search(r"\son[a-z]+=", page.text)
        assert "http://" not in page.text.replace("http://testserver", "")
        assert "https://" not in page.text


def test_a_failed_task_is_one_click_from_home_and_says_where_and_why(
    client: TestClient,
) -> None:
    failed = started_id(start(client, "classify_sum", {"a": "-5", "b": "2"}))
    succeeded = started_id(start(client, "classify_sum", {"a": "50", "b": "60"}))
    listing = client.get("/ui/tasks")
    assert 'href="/ui/tasks?status=failed"' in listing.text
    failed_only = client.get("/ui/tasks?status=failed")
    assert f'href="/ui/tasks/{failed}"' in failed_only.text
    assert f'href="/ui/tasks/{succeeded}"' not in failed_only.text
    row = text_of(failed_only)
    assert "classify_sum failed negative NegativeSum" in row
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row)

    page = client.get(f"/ui/tasks/{failed}")
    shown = text_of(page)
    assert "Failed in state negative NegativeSum : the sum is below zero" in shown
    assert '"a": -5' in html.unescape(page.text)  # the input, pretty-printed
    assert "Final state negative" in shown
    assert "sha256:" in shown  # the flow version
    assert '<details class="data" open>' in page.text
    assert "Input of step 1" in shown
    assert '"sum": -3' in shown
    assert "hx-trigger" not in page.text  # finished: nothing to poll
    assert "Cancel task" not in shown


def test_the_list_filters_by_flow_and_pages_forward_and_back(
    client: TestClient, service: TaskService
) -> None:
    # `service` shares the client's database: starting tasks through it is quicker.
    ids = [
        service.enqueue_task("echo_add", {"text": "t", "a": i, "b": 1}).task.id for i in range(30)
    ]
    service.enqueue_task("count_to", {"n": 2})
    first = client.get("/ui/tasks?flow=echo_add")
    assert first.text.count('<th scope="row"><a href="/ui/tasks/') == 25
    assert "count_to" not in text_of(first).split("Duration", 1)[1]
    assert f'href="/ui/tasks/{ids[-1]}"' in first.text  # newest first
    following = re.search(r'href="/ui/tasks\?([^"]+)" rel="next"', first.text)
    assert following is not None
    second = client.get("/ui/tasks?" + html.unescape(following.group(1)))
    assert second.text.count('<th scope="row"><a href="/ui/tasks/') == 5
    assert f'href="/ui/tasks/{ids[0]}"' in second.text
    assert 'rel="next"' not in second.text
    back = re.search(r'href="/ui/tasks\?([^"]+)" rel="prev"', second.text)
    assert back is not None
    again = client.get("/ui/tasks?" + html.unescape(back.group(1)))
    assert f'href="/ui/tasks/{ids[-1]}"' in again.text


def test_unfinished_tasks_are_polled_every_two_seconds_until_they_finish(
    client: TestClient,
) -> None:
    queued = started_id(start(client, "echo_add", {"text": "x", "a": "1", "b": "2"}, "queue"))
    listing = client.get("/ui/tasks")
    assert 'hx-trigger="every 2s"' in listing.text
    assert 'hx-get="/ui/tasks/rows?"' in listing.text or 'hx-get="/ui/tasks/rows' in listing.text
    rows = client.get("/ui/tasks/rows")
    assert rows.status_code == 200
    assert rows.text.lstrip().startswith('<tbody id="task-rows"')
    assert f'href="/ui/tasks/{queued}"' in rows.text
    page = client.get(f"/ui/tasks/{queued}")
    assert f'hx-get="/ui/tasks/{queued}/live"' in page.text
    assert "Cancel task" in page.text
    live = client.get(f"/ui/tasks/{queued}/live")
    assert live.text.lstrip().startswith('<div id="task-live"')
    assert "pending" in text_of(live)

    cancelled = client.post(
        f"/ui/tasks/{queued}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )
    assert cancelled.status_code == 303
    after = client.get(f"/ui/tasks/{queued}")
    assert "Cancelled in state echo" in text_of(after)
    assert "hx-trigger" not in after.text
    assert "hx-trigger" not in client.get("/ui/tasks/rows").text
    # Cancelling again: the task has finished, and the page says so.
    again = client.post(f"/ui/tasks/{queued}/cancel", headers=SAME_ORIGIN)
    assert again.status_code == 409
    assert "already finished" in text_of(again)


def test_the_flow_page_shows_its_input_schema_and_a_form_made_from_it(
    client: TestClient,
) -> None:
    page = client.get("/ui/flows/classify_sum")
    shown = text_of(page)
    assert "Add two numbers, then branch on the sum." in shown
    assert "a integer required" in shown
    assert 'label string optional "sum"' in shown
    assert re.search(
        r'<input type="number" id="input-a" name="input.a" value="" step="1"', page.text
    )
    assert re.search(
        r'<input type="text" id="input-label" name="input.label" value="sum"', page.text
    )
    assert '<label for="input-a">' in page.text
    assert 'value="queue"' in page.text
    assert 'value="wait"' in page.text
    halve = client.get("/ui/flows/halve_all")
    assert re.search(
        r'<textarea id="input-numbers" name="input.numbers"[^>]*data-json-field', halve.text
    )
    assert 'step="any"' in halve.text  # divisor: a number


def test_the_form_starts_a_task_that_runs_or_is_queued(client: TestClient) -> None:
    ran = started_id(start(client, "classify_sum", {"a": "70", "b": "40", "label": "big one"}))
    page = text_of(client.get(f"/ui/tasks/{ran}"))
    assert "succeeded" in page
    assert '"label": "big one"' in html.unescape(client.get(f"/ui/tasks/{ran}").text)
    api = client.get(f"/tasks/{ran}").json()
    assert api["input"] == {"a": 70, "b": 40, "label": "big one"}
    assert api["output"] == {"label": "big one", "sum": 110}

    queued = started_id(start(client, "halve_all", {"numbers": "[2, 4]", "divisor": "2"}, "queue"))
    assert client.get(f"/tasks/{queued}").json()["status"] == "pending"
    assert client.get(f"/tasks/{queued}").json()["input"] == {"numbers": [2, 4], "divisor": 2}


@pytest.mark.parametrize(
    ("flow", "fields", "next_to"),
    [
        ("classify_sum", {"a": "x", "b": "1"}, {"a": "'x' is not a whole number"}),
        ("classify_sum", {"a": "1.5", "b": "1"}, {"a": "'1.5' is not a whole number"}),
        ("echo_add", {"text": "t", "a": "nan", "b": "1"}, {"a": "'nan' is not a number"}),
        ("classify_sum", {"b": "1"}, {"a": "Field required"}),
        ("halve_all", {"numbers": "[1, 2", "divisor": "2"}, {"numbers": "not valid JSON"}),
        (
            "halve_all",
            {"numbers": '{"a": 1}', "divisor": "2"},
            {"numbers": "is not of type 'array'"},
        ),
        (
            "halve_all",
            {"numbers": '["x"]', "divisor": "2"},
            {"numbers": "at [0]: 'x' is not of type 'number'"},
        ),
    ],
)
def test_refused_input_comes_back_with_the_problem_next_to_its_field(
    client: TestClient, flow: str, fields: dict[str, str], next_to: dict[str, str]
) -> None:
    response = start(client, flow, fields)
    assert response.status_code == 422
    assert "The input was refused" in response.text
    for name, problem in next_to.items():
        block = re.search(
            rf'<ul class="field-problems" id="input-{name}-problems">(.*?)</ul>',
            response.text,
            re.S,
        )
        assert block is not None, response.text
        assert problem in html.unescape(block.group(1))
    # What was typed is kept, and no task was started.
    for value in fields.values():
        assert value in html.unescape(response.text)
    assert client.get("/tasks").json()["items"] == []


def test_a_form_with_fields_the_flow_does_not_have_is_still_judged_by_the_flow(
    client: TestClient,
) -> None:
    response = client.post(
        "/ui/flows/echo_add/tasks",
        data={"input.text": "hi", "input.a": "1", "input.b": "2", "input.zz": "9", "x": "y"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    # Unknown controls are not part of the flow's input: only declared fields are read.
    assert client.get(f"/tasks/{started_id(response)}").json()["input"] == {
        "text": "hi",
        "a": 1,
        "b": 2,
    }


def test_a_form_with_a_run_mode_the_page_does_not_offer_starts_nothing(
    client: TestClient,
) -> None:
    response = start(client, "classify_sum", {"a": "1", "b": "2"}, mode="later")
    assert response.status_code == 422
    assert "'later' is not a run mode; use wait or queue" in text_of(response)
    assert client.get("/tasks").json()["items"] == []


def test_a_form_that_is_not_url_encoded_is_refused_with_a_page(client: TestClient) -> None:
    response = client.post(
        "/ui/flows/echo_add/tasks", content=b'{"text": "x"}', headers=SAME_ORIGIN
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "URL-encoded form" in response.text


def test_validate_lists_problems_at_their_line_and_marks_the_line(client: TestClient) -> None:
    response = client.post("/ui/validate", data={"source": BROKEN_FLOW}, headers=SAME_ORIGIN)
    assert response.status_code == 200
    shown = text_of(response)
    assert "line 8:11" in shown
    assert "flow.unknown-state" in shown
    assert "did you mean `add`?" in shown
    assert '<a href="#L8">' in response.text
    assert '<tr id="L8" class="marked">' in response.text
    assert '<tr id="L7">' in response.text  # a line without a problem is not marked
    valid = client.post(
        "/ui/validate",
        data={"source": BROKEN_FLOW.replace("next: ad", "next: add")},
        headers=SAME_ORIGIN,
    )
    assert "The flow broken is valid" in text_of(valid)


@pytest.mark.parametrize(
    "source",
    [
        "a: &a [1]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\n" * 3,
        "name: x\nname: y\n",
        "\x00\x01 not yaml: [",
        "<script>alert(1)</script>: 1\n",
    ],
)
def test_validate_takes_hostile_documents_and_escapes_what_it_shows(
    client: TestClient, source: str
) -> None:
    response = client.post("/ui/validate", data={"source": source}, headers=SAME_ORIGIN)
    assert response.status_code == 200
    assert "invalid" in text_of(response)
    assert "<script>alert" not in response.text


def test_a_paste_larger_than_the_limit_is_refused_with_a_page(client: TestClient) -> None:
    huge = "# " + "x" * (1024 * 1024)
    response = client.post("/ui/validate", data={"source": huge}, headers=SAME_ORIGIN)
    assert response.status_code == 413


def test_unknown_tasks_and_flows_are_404_pages(client: TestClient) -> None:
    for path in (
        f"/ui/tasks/{uuid.uuid4()}",
        "/ui/tasks/not-a-task-id",
        "/ui/flows/no_such_flow",
        "/ui/flows/<b>",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text
        assert "<b>" not in response.text  # the name is shown escaped
    not_an_id = text_of(client.get("/ui/tasks/not-a-task-id"))
    assert "no task with id 'not-a-task-id' (not a task id)" in not_an_id
    bad_status = client.get("/ui/tasks?status=lost")
    assert bad_status.status_code == 422
    assert "'lost' is not a task status" in html.unescape(bad_status.text)
    bad_cursor = client.get("/ui/tasks?cursor=garbage")
    assert bad_cursor.status_code == 422
    assert "start again without it" in bad_cursor.text
    too_long = client.get("/ui/tasks", params={"flow": "x" * 300})
    assert too_long.status_code == 422
    assert "flow: String should have at most 256 characters" in text_of(too_long)


def test_a_database_that_cannot_be_reached_is_a_503_page_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailableError()

    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "list_tasks", unreachable)
    monkeypatch.setattr(service, "get_task", unreachable)
    for path in ("/ui/tasks", f"/ui/tasks/{uuid.uuid4()}"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.headers["content-type"].startswith("text/html")
        assert "Database unavailable" in response.text


def test_a_retry_shows_its_attempt_and_when_the_next_one_runs(
    client: TestClient, service: TaskService
) -> None:
    queued = started_id(start(client, "safe_divide", {"dividend": "1", "divisor": "0"}, "queue"))
    (claimed,) = service.claim(1)
    service.resume(claimed)  # the first attempt fails; the retry waits on the queue
    page = client.get(f"/ui/tasks/{queued}")
    shown = text_of(page)
    assert "pending" in shown
    assert "Next attempt" in shown
    assert re.search(r"Next attempt \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown)
    assert "DivisionByZero" in shown
    assert f'hx-get="/ui/tasks/{queued}/live"' in page.text


def test_diagrams_are_drawn_from_the_model_with_the_path_and_the_decision(
    client: TestClient,
) -> None:
    task = started_id(start(client, "classify_sum", {"a": "50", "b": "60"}))
    page = client.get(f"/ui/tasks/{task}").text
    diagram = re.search(r'data-diagram="(flowchart TD[^"]*)"', page)
    assert diagram is not None
    source = html.unescape(diagram.group(1))
    assert source == client.get(f"/tasks/{task}/graph").text
    assert "class s_0,s_1,s_3,s_5 taken" in source
    assert "Diagram source (Mermaid)" in page
    shown = text_of(client.get(f"/ui/tasks/{task}"))
    assert "choice rule 2 matched → big" in shown
    assert "Decision: rule 2 matched → big" in shown

    flow = html.unescape(client.get("/ui/flows/classify_sum").text)
    assert 'data-diagram="flowchart TD' in flow
    valid = client.post(
        "/ui/validate",
        data={"source": BROKEN_FLOW.replace("next: ad", "next: add")},
        headers=SAME_ORIGIN,
    )
    assert 'data-diagram="flowchart TD' in valid.text
    invalid = client.post("/ui/validate", data={"source": BROKEN_FLOW}, headers=SAME_ORIGIN)
    assert "data-diagram" not in invalid.text


def test_a_fan_out_links_its_child_tasks_and_each_child_its_parent(client: TestClient) -> None:
    parent = started_id(start(client, "halve_all", {"numbers": "[2, 4, 6]", "divisor": "2"}))
    page = client.get(f"/ui/tasks/{parent}")
    assert "Child tasks" in text_of(page)
    children = re.findall(r'<a href="/ui/tasks/([0-9a-f-]{36})" class="mono">', page.text)
    assert len(children) == 3
    assert {f"item:{index}" for index in range(3)} <= set(text_of(page).split())
    child = client.get(f"/ui/tasks/{children[0]}")
    assert f'href="/ui/tasks/{parent}"' in child.text
    assert "Started by" in text_of(child)
    listed = client.get(f"/ui/tasks?parent={parent}")
    assert listed.text.count('<th scope="row"><a href="/ui/tasks/') == 3
    assert "Children of task" in text_of(listed)


def test_a_wait_state_says_when_the_task_goes_on(client: TestClient, service: TaskService) -> None:
    queued = started_id(start(client, "delayed_echo", {"text": "x", "seconds": "60"}, "queue"))
    (claimed,) = service.claim(1)
    service.resume(claimed)  # the wait hands the task back to the queue
    shown = text_of(client.get(f"/ui/tasks/{queued}"))
    assert re.search(r"Goes on at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown)
    assert "Next attempt" not in shown
