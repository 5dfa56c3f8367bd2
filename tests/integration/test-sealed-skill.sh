#!/usr/bin/env bash
# Sealed skills (issue 20, item 4; proto/SKILLS.md, "Sealed skills"), through the real `age`
# and `tar` commands, a real redis-server and aispd on runc and runsc: a seller seals a skill
# to the node's recipient (`aisp skill seal`, or stock tar | age), the operator adds it with
# the node's identity (checked before anything is stored), the store holds only ciphertext,
# `show` and `export` never reveal the code, tasks run it (Python and JavaScript), its errors
# carry no source line, it is never mounted beside other code, a buyer's sealed task runs it
# and reads its result with `age -d`, and no plaintext canary of the code reaches the store,
# Redis, the node's state, run dirs or log. Every refusal is checked by its message. TAP.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes age age-keygen tar
redis_start

SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
W=$TEST_TMP/w
SK=$TEST_TMP/skills
mkdir -p "$W"
CANARY=sealedcode$RANDOM$RANDOM
LINE=linecanary$RANDOM$RANDOM
"$AISP" keygen --out "$TEST_TMP/key" >/dev/null
"$AISP" keygen --out "$W/other" >/dev/null
NODE_AGE=$(cat "$TEST_TMP/key/age.pub")
age-keygen -o "$W/buyer.key" 2>/dev/null
BUYER=$(age-keygen -y "$W/buyer.key")
store() { "$AISP" skill --store "$SK" "$@"; }

# ---------------------------------------------------------------- the seller's skills
mkdir -p "$W/sauce/code/pkg" "$W/sauce/resources"
cat >"$W/sauce/skill.toml" <<'EOF'
name = "sauce"
version = "1.0.0"
description = "A secret recipe"
language = "python"
entrypoint = "code/pkg/recipe.py:main"
mode = "sealed"
EOF
cat >"$W/sauce/code/pkg/recipe.py" <<EOF
import os
RECIPE = "$CANARY"
HERE = os.path.dirname(__file__)
def main(args):
    if args.get("boom"):
        raise ValueError("the recipe failed")  # $LINE
    if args.get("blob"):
        from runtime import blobs
        text = blobs.read_text(args["blob"])
        if args.get("peek"):
            return {"n": len(text)}
        return {"out": blobs.write_text(text.upper()), "n": len(text)}
    with open(os.path.join(HERE, "..", "..", "resources", "salt.txt")) as f:
        salt = f.read().strip()
    return {"sum": args["a"] + args["b"], "salt": salt, "files": sorted(os.listdir(HERE))}
EOF
printf 'pinch\n' >"$W/sauce/resources/salt.txt"
mkdir -p "$W/jsauce/code"
cat >"$W/jsauce/skill.toml" <<'EOF'
name = "jsauce"
version = "0.1.0"
language = "javascript"
entrypoint = "code/index.js:main"
mode = "sealed"
EOF
cat >"$W/jsauce/code/index.js" <<EOF
const RECIPE = "$CANARY";
exports.main = function (args) {
  if (args.boom) throw new Error("the js recipe failed"); // $LINE
  return { product: args.a * args.b };
};
EOF

# ---------------------------------------------------------------- sealing
expect "seal: no recipient" 1 "no recipients" "$AISP" skill seal "$W/sauce" -o "$W/x1"
cp -r "$W/sauce" "$W/opensauce" && sed -i 's/^mode = "sealed"/mode = "source"/' "$W/opensauce/skill.toml"
expect "seal: a source skill is not sealed" 1 'mode: is "source"' \
	"$AISP" skill seal "$W/opensauce" --to "$NODE_AGE" -o "$W/x2"
check "seal: no output directory left by a refusal" test ! -e "$W/x2"
out=$("$AISP" skill seal "$W/sauce" --to "$NODE_AGE" -o "$W/sauce.sealed" 2>&1)
like "aisp skill seal prints the digest" "$out" "sealed $W/sauce to 1 recipient: $W/sauce.sealed (digest sha256:"
is "the sealed directory holds skill.toml and skill.age" "$(ls "$W/sauce.sealed" | tr '\n' ' ')" "skill.age skill.toml "
check "skill.age is an age file" grep -q "^age-encryption.org/v1" "$W/sauce.sealed/skill.age"
check "the code's canary is not in the sealed directory" bash -c "! grep -rq '$CANARY' '$W/sauce.sealed'"
check "skill.toml is the seller's, byte for byte" cmp "$W/sauce/skill.toml" "$W/sauce.sealed/skill.toml"
age -d -i "$TEST_TMP/key/age.key" "$W/sauce.sealed/skill.age" >"$W/inner.tar"
is "its plaintext is a tar of the skill's tree (stock age and tar)" "$(tar -tf "$W/inner.tar" | tr '\n' ' ')" \
	"code code/pkg code/pkg/recipe.py resources resources/salt.txt skill.toml "
expect "seal: an already sealed directory" 1 "already sealed" \
	"$AISP" skill seal "$W/sauce.sealed" --to "$NODE_AGE" -o "$W/x3"
# the same with stock tools: tar | age -r, and the manifest beside it
mkdir -p "$W/jsauce.sealed"
cp "$W/jsauce/skill.toml" "$W/jsauce.sealed/"
tar -cf - -C "$W/jsauce" . | age -r "$NODE_AGE" -o "$W/jsauce.sealed/skill.age"

# ---------------------------------------------------------------- adding
expect "add without the node's identity is refused" 1 "skill sauce is sealed: give the node's age identity (-i DIR/age.key)" \
	store add "$W/sauce.sealed"
expect "add with another node's identity is refused" 1 "sealed skill sauce: skill.age: age:" \
	store add "$W/sauce.sealed" -i "$W/other/age.key"
check "nothing was stored by the refusals" bash -c "[ ! -e '$SK/names/sauce' ]"
mkdir -p "$W/bad1" && cp "$W/sauce.sealed/"* "$W/bad1/" && cp "$W/sauce/resources/salt.txt" "$W/bad1/"
expect "a sealed directory with another file" 1 "a sealed skill holds only skill.toml and skill.age" \
	store add "$W/bad1" -i "$TEST_TMP/key/age.key"
mkdir -p "$W/bad2" && cp "$W/sauce.sealed/"* "$W/bad2/" && sed -i 's/A secret recipe/Another recipe/' "$W/bad2/skill.toml"
expect "a public manifest that is not the sealed one" 1 "not the skill's public skill.toml" \
	store add "$W/bad2" -i "$TEST_TMP/key/age.key"
mkdir -p "$W/bad3/code" && cp "$W/jsauce/skill.toml" "$W/bad3/" && printf 'x\n' >"$W/bad3/code/other.js"
mkdir -p "$W/bad3.sealed" && cp "$W/bad3/skill.toml" "$W/bad3.sealed/"
tar -cf - -C "$W/bad3" . | age -r "$NODE_AGE" -o "$W/bad3.sealed/skill.age"
expect "a sealed archive without the entrypoint" 1 "entrypoint: code/index.js is not a file of the sealed skill" \
	store add "$W/bad3.sealed" -i "$TEST_TMP/key/age.key"
mkdir -p "$W/bad4" && cp "$W/jsauce/skill.toml" "$W/bad4/" && printf 'not age\n' >"$W/bad4/skill.age"
expect "a skill.age that is not an age file" 1 "sealed skill jsauce: skill.age: age:" \
	store add "$W/bad4" -i "$TEST_TMP/key/age.key"
out=$(store add "$W/sauce.sealed" -i "$TEST_TMP/key/age.key" 2>&1)
like "add -i opens and checks it, then stores it" "$out" "added sauce 1.0.0 sha256:"
SAUCE=$(cat "$SK/names/sauce")
is "its digest is the sealed directory's" "$SAUCE" "$("$AISP" skill digest "$W/sauce.sealed")"
check "the stock-tools sealed skill is added too" store add "$W/jsauce.sealed" -i "$TEST_TMP/key/age.key"
check "a source skill beside them" store add "$SRC/tests/data/skills/greeter"
show=$(store show sauce)
like "show: mode sealed" "$show" "mode        sealed"
like "show: the code is only encrypted" "$show" "code        sealed: only in skill.age"
check "show prints no code" bash -c "! grep -q '$CANARY' <<<'$show'"
like "verify -i opens the stored skill" "$(store verify sauce -i "$TEST_TMP/key/age.key")" \
	"ok sauce $SAUCE (sealed: opened and checked)"
store export sauce "$W/sauce.bundle.tar" 2>/dev/null
check "export: the bundle holds the ciphertext, not the code" bash -c "! grep -aq '$CANARY' '$W/sauce.bundle.tar'"
check "the store holds no plaintext of the code" bash -c "! grep -rq '$CANARY' '$SK'"
# importing the bundle on another node's store: opened and checked before it is stored
SK2=$TEST_TMP/skills2
expect "import of a sealed bundle without the node's identity is refused" 1 \
	"skill sauce is sealed: give the node's age identity (-i DIR/age.key)" \
	"$AISP" skill --store "$SK2" import "$W/sauce.bundle.tar"
expect "import with another node's identity is refused" 1 "sealed skill sauce: skill.age: age:" \
	"$AISP" skill --store "$SK2" import "$W/sauce.bundle.tar" -i "$W/other/age.key"
check "nothing was stored by the import refusals" bash -c "[ ! -e '$SK2/names/sauce' ] && [ -z \"\$(ls -A '$SK2/tmp' 2>/dev/null)\" ]"
like "import -i opens and checks it, then stores it" \
	"$("$AISP" skill --store "$SK2" import "$W/sauce.bundle.tar" --digest "$SAUCE" -i "$TEST_TMP/key/age.key" 2>&1)" \
	"imported sauce 1.0.0 $SAUCE"
like "a source bundle needs no identity" \
	"$(store export greeter - 2>/dev/null | "$AISP" skill --store "$SK2" import - 2>&1)" "imported greeter"

# ---------------------------------------------------------------- tasks
POOL="runc/default/python = 1
runsc/default/python = 1" EXTRA_SECTIONS="[skills]
store = $SK" node_conf a
node_start a
wait_for 60 node_registered a || bail "node a did not register: $(node_log a | tail -5)"
submit() {
	submit_json "$(jq -nc --arg id "$1" --argjson f "$2" '{id:$id} + $f')" >/dev/null &&
		wait_result "$1" 90
}
for rt in runc runsc; do
	id=sauce-$rt
	check "$rt: the sealed skill runs" submit "$id" "{\"runtime\":\"$rt\",\"skill\":\"sauce\",\"args\":{\"a\":2,\"b\":40}}"
	is "$rt: its return value (code and resources unpacked)" \
		"$(rfield "$id" '[.status, (.return_value.sum|tostring), .return_value.salt, (.return_value.files|join(","))] | join(" ")')" \
		"ok 42 pinch recipe.py"
	result "$id" >"$W/$id.json"
	check "$rt: aisp verify passes" "$AISP" verify "$W/$id.json" --redis "$AISP_REDIS"
	is "$rt: the attestation names the sealed digest" \
		"$(rfield "$id" '.attestation.payload' | base64 -d | jq -r '.predicate.skills[0] | .name + " " + .digest')" "sauce $SAUCE"
	id=boom-$rt
	check "$rt: a failing sealed skill" submit "$id" "{\"runtime\":\"$rt\",\"skill\":\"sauce\",\"args\":{\"boom\":true}}"
	like "$rt: its error names the exception" "$(rfield "$id" .error)" "ValueError: the recipe failed"
	like "$rt: its traceback names the frame" "$(rfield "$id" .stderr)" 'recipe.py", line 6, in main'
	check "$rt: but shows no line of the sealed code" bash -c "! grep -q -e '$LINE' -e 'raise ValueError' <<<\"\$1\"" _ "$(rfield "$id" '.stderr + .error')"
	id=js-$rt
	check "$rt: a sealed JavaScript skill (sealed with stock tar and age)" submit "$id" \
		"{\"runtime\":\"$rt\",\"skill\":\"jsauce\",\"args\":{\"a\":6,\"b\":7}}"
	is "$rt: its return value" "$(rfield "$id" '.status + " " + (.return_value.product|tostring)')" "ok 42"
	id=jsboom-$rt
	submit "$id" "{\"runtime\":\"$rt\",\"skill\":\"jsauce\",\"args\":{\"boom\":true}}"
	like "$rt: a JavaScript error names itself" "$(rfield "$id" .error)" "Error: the js recipe failed"
	like "$rt: with its frames" "$(rfield "$id" .stderr)" "at exports.main"
	check "$rt: and no line of the sealed code" bash -c "! grep -q -e '$LINE' -e 'throw new' <<<\"\$1\"" _ "$(rfield "$id" '.stderr + .error')"
	id=mount-$rt
	submit "$id" "{\"runtime\":\"$rt\",\"lang\":\"python\",\"code\":\"import os; print(os.listdir('/.aisp/skills/sauce'))\",\"mount_skills\":[\"sauce\"]}"
	is "$rt: a sealed skill is never mounted beside other code" "$(rfield "$id" '.status + ": " + .error')" \
		"rejected: skill sauce is sealed: it runs only as a task's \"skill\", never mounted beside other code (which could read it)"
	id=src-$rt
	submit "$id" "{\"runtime\":\"$rt\",\"lang\":\"python\",\"code\":\"import os; print(os.path.exists('/.aisp/skills/sauce'), os.path.exists('/.aisp/skills/.sealed'))\"}"
	is "$rt: the next task's sandbox shows no sealed skill and no marker" "$(rfield "$id" '.status + " " + .stdout')" "ok False False"
done

# ---------------------------------------------------------------- a buyer's sealed task runs it
printf '{"a": 20, "b": 22}' >"$W/args.json"
id=buyer-1
check "a sealed task (reply_to) may run a sealed skill" submit "$id" \
	"$(jq -nc --arg to "$BUYER" '{runtime:"runc", skill:"sauce", args:{a:20,b:22}, reply_to:$to}')"
is "its result is sealed to the buyer" "$(rfield "$id" '.status + " " + (has("return_value")|tostring)')" "ok false"
is "the buyer opens it with age -d" \
	"$(rfield "$id" .sealed | base64 -d | age -d -i "$W/buyer.key" | jq -c '.result.return_value.sum')" "42"

# its input blob sealed to the node (blobs_age), its output blob sealed to the buyer
BCANARY=buyerdata$RANDOM$RANDOM
printf 'buyer %s' "$BCANARY" | age -r "$NODE_AGE" >"$W/in.age"
IN=$("$AISP" blob put "$W/in.age")
id=buyer-2
check "a sealed task with an input blob sealed to the node (blobs_age)" submit "$id" \
	"$(jq -nc --arg to "$BUYER" --arg b "$IN" '{runtime:"runsc", skill:"sauce", blobs:[$b], blobs_age:true, args:{blob:$b}, reply_to:$to}')"
rfield "$id" .sealed | base64 -d | age -d -i "$W/buyer.key" >"$W/$id.doc"
is "the program read the plaintext under the ciphertext's id" "$(jq -r '.result.status + " " + (.result.return_value.n|tostring)' "$W/$id.doc")" \
	"ok $((6 + ${#BCANARY}))"
OUT=$(jq -r '.result.return_value.out' "$W/$id.doc")
is "the output blob the program named is replaced by its ciphertext's id" \
	"$(jq -r '.result.output_blobs | length' "$W/$id.doc") $(jq -r '.result.output_blobs[0] == "'"$OUT"'"' "$W/$id.doc")" "1 false"
SEALED_OUT=$(jq -r '.result.output_blobs[0]' "$W/$id.doc")
is "the buyer reads the output blob with aisp blob get and age -d" \
	"$("$AISP" blob get "$SEALED_OUT" | age -d -i "$W/buyer.key")" "BUYER ${BCANARY^^}"
check "the public result lists no output blob" bash -c "[ \"\$1\" = null ]" _ "$(rfield "$id" .output_blobs)"
id=nb-1
submit "$id" "$(jq -nc --arg b "$IN" '{runtime:"runc", skill:"sauce", blobs:[$b], blobs_age:true, args:{blob:$b, peek:true}}')"
is "blobs_age without reply_to: the program reads the plaintext, the result is public" \
	"$(rfield "$id" '.status + " " + (.return_value.n|tostring)')" "ok $((6 + ${#BCANARY}))"
"$AISP" blob put - <<<"plain text" >"$W/plain.id"
PLAIN=$(cat "$W/plain.id")
id=nb-2
submit "$id" "$(jq -nc --arg b "$PLAIN" '{runtime:"runc", skill:"sauce", blobs:[$b], blobs_age:true, args:{blob:$b}}')"
like "blobs_age with a blob that is not an age file is rejected by name" "$(rfield "$id" '.status + ": " + .error')" \
	"rejected: blob $PLAIN (blobs_age): age:"

# ---------------------------------------------------------------- nothing leaked
R BGREWRITEAOF >/dev/null 2>&1
sleep 1
leaks=$(grep -rail -e "$CANARY" -e "$BCANARY" -e "${BCANARY^^}" "$(node_dir a)" "$TEST_TMP/redis" "$SK" 2>/dev/null)
is "no plaintext of the sealed code or the buyer's blobs in Redis, the store, the node's state, run dirs or log" "${leaks:-none}" none

# ---------------------------------------------------------------- a changed store is refused
hex=${SAUCE#sha256:}
chmod u+w "$SK/skills/$hex/skill.age"
cp "$W/jsauce.sealed/skill.age" "$SK/skills/$hex/skill.age"
id=tampered
submit "$id" '{"runtime":"runc","skill":"sauce","args":{"a":1,"b":1}}'
like "a sealed skill changed in the store is refused" "$(rfield "$id" '.status + ": " + .error')" \
	"rejected: skill sauce: the stored tree hashes to"
node_stop a >/dev/null
done_testing
