import json; d = {"b": [1, 2, {"c": None}], "a": "ü", "n": 1.5}; print(json.dumps(d, sort_keys=True)); print(json.dumps(d))
