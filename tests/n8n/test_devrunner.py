"""The development workflow runner: plays n8n when N8N_BASE_URL is unset."""

from n8n import devrunner
from tests import support
from tests.task_support import FakeN8n, wait_for


def test_it_answers_like_n8n_with_an_execution_id(monkeypatch):
    runs = []
    monkeypatch.setattr(devrunner, "run", lambda *args: runs.append(args))
    port = support.free_port()
    body = {
        "task_id": 1,
        "input": {"message": "hi"},
        "callback_url": f"http://127.0.0.1:{port}/tasks/1/webhook/",
        "callback_token": "t",
    }
    status, data = devrunner.accept(body, {})
    assert status == 200
    assert data["executionId"].startswith("dev-")
    _, again = devrunner.accept(body, {})
    assert again["executionId"] != data["executionId"]
    wait_for(lambda: len(runs) == 2, timeout=5, what="both runs to start")
    assert [(run[0]["task_id"], run[1]) for run in runs] == [
        (1, data["executionId"]),
        (1, again["executionId"]),
    ]


def test_it_refuses_a_body_without_a_callback(settings):
    status, data = devrunner.accept({"task_id": 1}, {})
    assert status == 400
    assert "callback_url" in data["message"]


def test_its_reply_says_it_is_the_development_runner_and_echoes_the_message():
    reply = devrunner.reply_for({"input": {"message": "Echo me", "history": [{}, {}]}}, "dev-9")
    assert "development workflow runner" in reply["content"]
    assert "Echo me" in reply["content"]
    assert "2 earlier message" in reply["thinking"]


def test_its_callbacks_are_retried_on_connection_errors(monkeypatch):
    monkeypatch.setattr(devrunner, "CALLBACK_PAUSE_SECONDS", 0.01)
    port = support.free_port()
    status = devrunner.post_callback(f"http://127.0.0.1:{port}/x/", "t", {"status": "processing"})
    assert status is None  # gave up after CALLBACK_TRIES, without raising
    with FakeN8n([(200, {}, 0)]) as server:
        assert devrunner.post_callback(server.base_url + "/x/", "tok", {"a": 1}) == 200
    assert server.requests[0]["headers"]["Authorization"] == "Bearer tok"


def runner_body(base_url, message="stream me"):
    return {
        "task_id": 1,
        "input": {"message": message, "history": []},
        "callback_url": base_url + "/tasks/1/webhook/",
        "callback_token": "tok",
    }


def test_it_streams_the_reply_word_by_word_then_sends_it_whole():
    with FakeN8n([(200, {}, 0)]) as server:
        body = runner_body(server.base_url)
        devrunner.run(body, "dev-1", 0, word_pause=0)
    payloads = [request["body"] for request in server.requests]
    deltas = [p["delta"] for p in payloads if "delta" in p]
    content = devrunner.reply_for(body, "dev-1")["content"]
    assert len(deltas) > 10
    assert "".join(deltas) == content
    assert all(p["status"] == "processing" for p in payloads if "delta" in p)
    assert payloads[-1]["status"] == "completed"
    assert payloads[-1]["output"]["content"] == content


def test_a_409_stops_the_stream_and_sends_no_completed():
    # processing, two words, then the task is stopped (409).
    answers = [(200, {}, 0), (200, {}, 0), (200, {}, 0), (409, {"status": "cancelled"}, 0)]
    with FakeN8n(answers) as server:
        devrunner.run(runner_body(server.base_url), "dev-2", 0, word_pause=0)
    statuses = [request["body"]["status"] for request in server.requests]
    assert statuses == ["processing"] * 4


def test_its_reply_names_the_assistant_and_the_instructions_first_words():
    body = {
        "input": {
            "message": "hi",
            "history": [],
            "assistant": {"id": 3, "name": "Writer"},
            "instructions": "Answer like a pirate who loves the sea and every ship on it, always.",
        }
    }
    content = devrunner.reply_for(body, "dev-1")["content"]
    assert "Assistant: Writer." in content
    assert "Instructions received: “Answer like a pirate who loves the sea and every" in content
    assert "always." not in content  # only the first words


def test_its_reply_says_when_there_is_no_assistant_or_instructions():
    content = devrunner.reply_for({"input": {"message": "hi", "assistant": None}}, "dev-1")
    assert "Assistant: none configured." in content["content"]
    assert "Instructions received: none." in content["content"]
