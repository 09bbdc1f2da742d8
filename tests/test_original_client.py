"""The original client, iotile-cloud 0.9.14 from PyPI in its own virtualenv, against our server."""

from __future__ import annotations

import datetime as dt
import json

from iotile_cloud.api.connection import Api
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER
from .original_client import run_original

SCRIPT = r"""
import json, sys
import iotile_cloud
from iotile_cloud.api.connection import Api
from iotile_cloud.stream.data import StreamData
from iotile_cloud.stream.report import AccumulationReportGenerator

domain, email, password, device = sys.argv[1:5]
c = Api(domain)
assert c.login(email=email, password=password)
org = c.org.post({"name": "Legacy Org"})
project = c.project.post({"name": "Legacy Project", "org": org["slug"]})
claimed = c.device.claim.post({"device": device, "project": project["id"]})
devices = c.device.get(project=project["id"])["results"]
streams = c.stream.get(device=device)["results"]
stream = [s for s in streams if s["slug"].endswith("--5001")][0]["slug"]
points = [{"stream": stream, "timestamp": "2026-01-01T%02d:%02d:00Z" % (i // 60, i % 60), "int_value": 1}
          for i in range(250)]
c.data.post(points)
data = StreamData(stream, c)
data.initialize_from_server(page_size=100)
gen = AccumulationReportGenerator(c)
import datetime
stats = gen.compute_sum(sources=[project["slug"]], start=datetime.datetime(2025, 12, 31),
                        end=datetime.datetime(2026, 1, 2))
c.logout()
print(json.dumps({"version": getattr(iotile_cloud, "__version__", None), "devices": [d["slug"] for d in devices],
                  "streams": len(streams), "points": len(data.data), "first": data.data[0], "stats": stats,
                  "claimed": claimed}))
"""


def test_original_client_against_our_server(cloud: CloudHelper) -> None:
    from iotile_cloud.server import db

    with cloud.engine.begin() as conn:
        conn.execute(
            db.devices.insert().values(
                id=0x77,
                label="Legacy",
                sg="water-meter-v1-1-0",
                template="internaltestingtemplate-v1-0-0",
                created_on=db.now_us(),
            )
        )
    result = run_original(SCRIPT, cloud.url, USER[0], USER[1], "d--0000-0000-0000-0077")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == ["d--0000-0000-0000-0077"]
    assert out["streams"] == 6
    assert out["points"] == 250  # three pages read by the original's page loop
    assert out["first"]["output_value"] == 1.0000000000000002 or abs(out["first"]["output_value"] - 1) < 1e-9
    stream = next(iter(out["stats"]["streams"]))
    assert out["stats"]["streams"][stream]["units"] == "G"
    assert abs(out["stats"]["total"] - 250.0) < 1e-6
    # And what the original wrote, our client reads back the same.
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    assert api.data.get(filter=stream)["count"] == 250
    assert dt.datetime.now(dt.timezone.utc).year >= 2026
