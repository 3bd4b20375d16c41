"""A model whose (Jinja) template never finishes: 400 within the deadline, server unharmed."""

from __future__ import annotations

from models.manifest import MEDIA_MODEL, ModelConfig
from models.names import ModelName
from tests.conftest import DEFAULT_MODEL, LiveServer

RUNAWAY = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"
    "{{ messages[0]['content'] }}"
)


def test_runaway_template_is_stopped(live: LiveServer) -> None:
    base = live.store.read_manifest(ModelName.parse(DEFAULT_MODEL))
    (model_layer,) = base.layers_of(MEDIA_MODEL)
    live.store.create_model(
        "runaway:latest",
        model_blob=model_layer.digest,
        template=RUNAWAY,
        config=ModelConfig(model_format="gguf", model_family="llama"),
    )
    with live.client() as http:
        r = http.post(
            "/api/chat",
            json={
                "model": "runaway",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": False,
            },
        )
        assert r.status_code == 400
        assert "too long" in r.json()["error"]
        ok = http.post(
            "/api/generate",
            json={
                "model": DEFAULT_MODEL,
                "prompt": "Hi",
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
        assert ok.status_code == 200
        http.request("DELETE", "/api/delete", json={"model": "runaway"})
