"""A COCO export that grows as people label: copies of a real image with its people's boxes shifted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def grow_export(export: Path, copies: int, start: int = 0) -> list[str]:
    """Labelled images added to the export: copies of a real image with its people's boxes shifted by 3 px, numbered
    from ``start`` (a second growth passes the first's count, so names and ids stay unique)."""
    data = json.loads((export / "test_coco.json").read_text())
    source = data["images"][0]
    people = [a for a in data["annotations"] if a["image_id"] == source["id"]]
    names = []
    for k in range(start, start + copies):
        image_id, name = 900000 + k, f"grown_{k:03d}.jpg"
        shutil.copy(export / source["file_name"], export / name)
        data["images"].append({**source, "id": image_id, "file_name": name})
        for j, person in enumerate(people):
            x, y, w, h = person["bbox"]
            data["annotations"].append({**person, "id": 9000000 + 100 * k + j, "image_id": image_id,
                                        "bbox": [x + 3, y + 3, w, h]})
        names.append(name)
    (export / "test_coco.json").write_text(json.dumps(data))
    return names
