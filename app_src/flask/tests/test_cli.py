from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from pystack_flask import create_app
from pystack_flask.state import state


def test_init_db_is_idempotent(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"})
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "schema ready: categories, item_tags, items, tags"
    with app.app_context():
        assert set(inspect(state().engine).get_table_names()) == {"categories", "item_tags", "items", "tags"}
