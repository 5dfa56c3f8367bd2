"""Lead sync (the Skills Runtime seed's example): CSV input blob in, JSON output blob out."""
import csv
import io
import json
import os

from runtime import blobs, log, proxy_fetch

SECRETS = ("SALESFORCE_API_KEY", "SALESFORCE_ORG_ID")
RESOURCES = os.path.join(os.path.dirname(__file__), "..", "..", "resources")


def _field_map():
    with open(os.path.join(RESOURCES, "field_map.json"), encoding="utf-8") as f:
        return json.load(f)


def _records(csv_text, fields):
    """(records, rejected): one Lead per valid row; rejected rows with their line number."""
    records, rejected = [], []
    for line, row in enumerate(csv.DictReader(io.StringIO(csv_text)), start=2):
        lead = {fields[k]: (v or "").strip() for k, v in row.items() if k in fields}
        email = lead.get("Email", "").lower()
        local, _, domain = email.partition("@")
        if not local or "." not in domain:
            rejected.append({"line": line, "error": "invalid email"})
            continue
        lead["Email"] = email
        records.append(lead)
    return records, rejected


def main(args):
    log.info("Starting sync...")
    missing = [name for name in SECRETS if not os.environ.get(name)]
    if missing:
        raise RuntimeError("missing secrets: " + ", ".join(missing))
    records, rejected = _records(blobs.read_text(args["input_blob"]), _field_map())
    output_blob = blobs.write_json({"records": records, "rejected": rejected})
    log.info(f"Created output blob: {output_blob}")
    if args.get("push"):
        proxy_fetch("https://login.salesforce.com/services/data/v59.0/composite/sobjects",
                    method="POST", service="salesforce", body=json.dumps(records))
    return {
        "status": "completed",
        "synced": len(records),
        "rejected": len(rejected),
        "output_blob": output_blob,
    }
