#!/usr/bin/env bash
# aisp skill end to end (proto/SKILLS.md): add the seed's salesforce skill, list, show, the
# digest against an independent implementation of the canonical list (find, sort, sha256sum),
# export as a tar that GNU tar reads and as a directory, import from a file, stdin, a
# directory and a GNU tar archive, refusals that leave the store unchanged, rm. TAP output.
# Needs AISP_BIN and AISP_SOURCE_ROOT.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
. "$(dirname "$0")/../lib/host.sh"
: "${AISP_BIN:?}"
SRC=${AISP_SOURCE_ROOT:?}/tests/data/skills/salesforce
export AISP_SKILL_STORE=$TEST_TMP/store

# The canonical list of proto/SKILLS.md, "Digest", with coreutils only.
canonical_digest() {
	(
		cd "$1" || exit 1
		printf 'aisp-skill-v1\n'
		find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort | while IFS= read -r p; do
			if [ -d "$p" ]; then
				echo "d 755 $p"
			else
				m=644
				[ "$(stat -c %A "$p" | cut -c4)" = x ] && m=755
				echo "f $m $(sha256sum <"$p" | cut -d' ' -f1) $(stat -c %s "$p") $p"
			fi
		done
	) | sha256sum | cut -d' ' -f1 | sed 's/^/sha256:/'
}
# entries STORE SUB: how many entries STORE/SUB holds.
entries() { find "$1/$2" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

want=$(canonical_digest "$SRC")
expect "add validates and stores the skill" 0 "^added salesforce 1.0.0 $want (8 entries" \
	"$AISP" skill add "$SRC"
is "the digest is the canonical list's" "$("$AISP" skill digest "$SRC")" "$want"
expect "adding it again changes nothing" 0 "^unchanged salesforce 1.0.0 $want" \
	"$AISP" skill add "$SRC"
expect "ls lists it" 0 "^salesforce  *1.0.0  *python  *$want" "$AISP" skill ls
expect "show names its secrets" 0 "^secrets     SALESFORCE_API_KEY, SALESFORCE_ORG_ID" \
	"$AISP" skill show salesforce
expect "verify recomputes the digest" 0 "^ok salesforce $want" "$AISP" skill verify "$want"
tree=$AISP_SKILL_STORE/skills/${want#sha256:}
is "the tree is read-only to others" "$(stat -c '%a %U' "$tree" "$tree/code/leads/sync.py" | tr '\n' ' ')" \
	"755 root 644 root "

# ---- export ----
expect "export writes a tar" 0 "exported salesforce" "$AISP" skill export salesforce "$TEST_TMP/s.tar"
"$AISP" skill export "$want" - >"$TEST_TMP/s2.tar"
check "exports are byte-identical" cmp -s "$TEST_TMP/s.tar" "$TEST_TMP/s2.tar"
is "members have zero owners and times" "$(tar -tvf "$TEST_TMP/s.tar" | awk '{print $2, $4}' | sort -u)" \
	"0/0 1970-01-01"
mkdir "$TEST_TMP/x"
check "GNU tar extracts it" tar -xf "$TEST_TMP/s.tar" -C "$TEST_TMP/x"
check "the extracted skill/ is the source tree" diff -r "$SRC" "$TEST_TMP/x/skill"
is "its digest file" "$(cat "$TEST_TMP/x/digest")" "$want"
expect "export --dir writes a directory bundle" 0 "exported" \
	"$AISP" skill export salesforce "$TEST_TMP/bundle" --dir
check "the directory bundle is what tar extracts" diff -r "$TEST_TMP/x" "$TEST_TMP/bundle"
expect "export to an existing directory is refused" 1 "File exists" \
	"$AISP" skill export salesforce "$TEST_TMP/bundle" --dir

# ---- import ----
S2=$TEST_TMP/store2
expect "import from a file, pinned by digest" 0 "^imported salesforce 1.0.0 $want" \
	"$AISP" skill import "$TEST_TMP/s.tar" --digest "$want" --store "$S2"
expect "rm removes it" 0 "^removed salesforce $want" "$AISP" skill rm salesforce --store "$S2"
is "nothing is left" "$(entries "$S2" skills)$(entries "$S2" names)" "00"
expect "import from stdin" 0 "^imported salesforce" "$AISP" skill import - --store "$S2" <"$TEST_TMP/s.tar"
"$AISP" skill rm "$want" --store "$S2" >/dev/null
expect "import a directory bundle" 0 "^imported salesforce" \
	"$AISP" skill import "$TEST_TMP/bundle" --store "$S2"
"$AISP" skill rm salesforce --store "$S2" >/dev/null
tar -cf "$TEST_TMP/gnu.tar" -C "$TEST_TMP/x" digest skill
expect "import a bundle GNU tar packed" 0 "^imported salesforce 1.0.0 $want" \
	"$AISP" skill import "$TEST_TMP/gnu.tar" --store "$S2"
"$AISP" skill rm salesforce --store "$S2" >/dev/null
other=sha256:$(printf '%064d' 0)
expect "a bundle that is not the expected skill" 1 "the bundle is skill $want, not the expected" \
	"$AISP" skill import "$TEST_TMP/s.tar" --digest "$other" --store "$S2"
sed -i 's/Starting sync/Starting SYNC/' "$TEST_TMP/x/skill/code/leads/sync.py"
tar -cf "$TEST_TMP/changed.tar" -C "$TEST_TMP/x" digest skill
expect "a bundle changed in transit" 1 "archive: the files hash to sha256:.*, not $want" \
	"$AISP" skill import "$TEST_TMP/changed.tar" --store "$S2"
ln -s /etc/shadow "$TEST_TMP/x/skill/code/leak"
tar -cf "$TEST_TMP/link.tar" -C "$TEST_TMP/x" digest skill
expect "a bundle with a symlink" 1 "archive: member .* (skill/code/leak): a symbolic link" \
	"$AISP" skill import "$TEST_TMP/link.tar" --store "$S2"
is "refused imports store nothing" "$(entries "$S2" skills)$(entries "$S2" names)$(entries "$S2" tmp)" "000"

# ---- refusals at add ----
cp -r "$SRC" "$TEST_TMP/bad"
sed -i 's/^language = "python"/language = "ruby"/' "$TEST_TMP/bad/skill.toml"
expect "an invalid manifest names the line and key" 1 \
	"bad/skill.toml:6: language: must be \"python\" or \"javascript\", not \"ruby\"" \
	"$AISP" skill add "$TEST_TMP/bad" --store "$S2"
cp -r "$SRC" "$TEST_TMP/big"
truncate -s 33554433 "$TEST_TMP/big/resources/huge.bin"
expect "a skill over the size cap" 1 "more than 33554432 bytes of files" \
	"$AISP" skill add "$TEST_TMP/big" --store "$S2"
cp -r "$SRC" "$TEST_TMP/linked"
ln -s /etc/shadow "$TEST_TMP/linked/resources/shadow"
expect "a skill with a symlink" 1 "resources/shadow: a symbolic link" \
	"$AISP" skill add "$TEST_TMP/linked" --store "$S2"
cp -r "$SRC" "$TEST_TMP/v2"
sed -i 's/^version = "1.0.0"/version = "1.1.0"/' "$TEST_TMP/v2/skill.toml"
expect "a name that is taken" 1 "skill salesforce is already in the store as $want" \
	"$AISP" skill add "$TEST_TMP/v2"
expect "--replace replaces it" 0 "^added salesforce 1.1.0" "$AISP" skill add "$TEST_TMP/v2" --replace
is "the old tree is gone" "$(entries "$AISP_SKILL_STORE" skills)" "1"
is "refused adds store nothing" "$(entries "$S2" skills)$(entries "$S2" names)$(entries "$S2" tmp)" "000"

# ---- the store changed behind its back ----
v2=$("$AISP" skill digest "$TEST_TMP/v2")
echo "import os" >>"$AISP_SKILL_STORE/skills/${v2#sha256:}/code/leads/sync.py"
expect "verify notices a changed tree" 1 "skill salesforce: the stored files hash to" \
	"$AISP" skill verify salesforce
expect "unknown skills are named" 1 "skill nosuch is not in the store at" "$AISP" skill show nosuch
expect "usage errors exit 2" 2 "usage: aisp skill" "$AISP" skill add
done_testing
