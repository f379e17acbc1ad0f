// Package readme keeps the documentation honest: it fails when a README
// names a folder or make target that does not exist, or when a demo no
// longer prints what its README shows.
package readme

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"client-go-demo/internal/demotest"
)

var (
	update = flag.Bool("update", false, "rewrite the README output blocks from a real run in the kubeconfig's namespace")
	only   = flag.String("only", "", "with -update or without: only this demo folder (e.g. restclient)")
)

// demos are the demo folders, in the order make demo runs them; the ones
// built on the Reflector live under it.
var demos = []string{"restclient", "clientset", "dynamicclient", "discoveryclient", "reflector",
	"reflector/watch", "reflector/informer", "reflector/controller"}

// binName is the file a demo is built into: "reflector" is a binary, so
// reflector/watch cannot be a path below it.
func binName(demo string) string { return strings.ReplaceAll(demo, "/", "-") }

// TestNamesExist checks that the folders and make targets the READMEs name
// are real.
func TestNamesExist(t *testing.T) {
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z%-]+):`).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	for _, readme := range []string{"README.md", "README.zh-CN.md"} {
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range regexp.MustCompile("`make ([a-z-]+)").FindAllStringSubmatch(text, -1) {
			name := m[1]
			if !targets[name] && !(strings.HasPrefix(name, "run-") && targets["run-%"]) {
				t.Errorf("%s names `make %s`, which the Makefile does not have", readme, name)
			}
		}
		for _, m := range regexp.MustCompile(`go run \./([a-z/]*[a-z])`).FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(filepath.Join(m[1], "main.go")); err != nil {
				t.Errorf("%s runs ./%s, which has no main.go", readme, m[1])
			}
		}
		for _, m := range regexp.MustCompile(`\]\(([a-z][a-zA-Z0-9_./-]*)\)`).FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(strings.SplitN(m[1], "#", 2)[0]); err != nil {
				t.Errorf("%s links to %s, which does not exist", readme, m[1])
			}
		}
		for _, d := range demos {
			if !strings.Contains(text, "("+d+")") {
				t.Errorf("%s does not link the %s demo", readme, d)
			}
		}
	}
}

// TestMakeRuns checks that make really runs what the READMEs promise:
// `make -n` prints the commands without running them.
func TestMakeRuns(t *testing.T) {
	for _, d := range demos {
		out, err := exec.Command("make", "-n", "run-"+d).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "go run ./"+d) {
			t.Errorf("make -n run-%s: %v\n%s", d, err, out)
		}
	}
	// No recipe may hold $(MAKE): make runs such lines even with -n.
	for _, target := range []string{"help", "demo", "test", "lint", "images", "kubectl", "localcluster", "cluster-up", "cluster-down", "cluster-restart-apiserver", "cluster-compact"} {
		if out, err := exec.Command("make", "-n", target).CombinedOutput(); err != nil {
			t.Errorf("make -n %s: %v\n%s", target, err, out)
		}
	}
}

// block is one output block of a demo README: the command in its marker
// comment, and the lines below it. A block marked with Kubernetes
// versions, as in
//
//	<!-- output: go run ./discoveryclient (Kubernetes 1.36, 1.35) -->
//
// is what the same command prints against those versions' control planes
// (make test K8S=1.35), where it differs from 1.37's, which the unmarked
// block shows.
type block struct {
	args     []string
	versions []string // none for 1.37, the release of our client-go
	start    int      // byte offsets of the block's content in the README
	end      int
	expected string
}

var marker = regexp.MustCompile("(?m)^<!-- output: go run \\./([a-z/]*[a-z])(.*?)(?: \\(Kubernetes (1\\.[0-9]+(?:, 1\\.[0-9]+)*)\\))? -->\n```text\n")

// blocks returns the output blocks of readme that a control plane of minor
// version server runs: each unmarked block, or in its place the block of
// the same command marked with server's version.
func blocks(t *testing.T, readme string, demo string, server string) []block {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var all []block
	for _, m := range marker.FindAllSubmatchIndex(b, -1) {
		if got := string(b[m[2]:m[3]]); got != demo {
			t.Errorf("%s has an output block for ./%s", readme, got)
			continue
		}
		end := bytes.Index(b[m[1]:], []byte("```\n"))
		if end < 0 {
			t.Fatalf("%s: unterminated output block", readme)
		}
		blk := block{
			args:     strings.Fields(string(b[m[4]:m[5]])),
			start:    m[1],
			end:      m[1] + end,
			expected: string(b[m[1] : m[1]+end]),
		}
		if m[6] >= 0 {
			blk.versions = strings.Split(string(b[m[6]:m[7]]), ", ")
		}
		all = append(all, blk)
	}
	var out []block
	for _, blk := range all {
		if blk.versions != nil {
			if slices.Contains(blk.versions, "1.37") {
				t.Errorf("%s: a block marked (Kubernetes 1.37): unmarked blocks are 1.37's", readme)
			}
			if !slices.ContainsFunc(all, func(o block) bool { return o.versions == nil && slices.Equal(o.args, blk.args) }) {
				t.Errorf("%s: the block of %q for Kubernetes %s has no unmarked block of the same command", readme, blk.args, blk.versions)
			}
			continue
		}
		if i := slices.IndexFunc(all, func(o block) bool { return slices.Contains(o.versions, server) && slices.Equal(o.args, blk.args) }); i >= 0 && server != "1.37" {
			blk = all[i]
		}
		out = append(out, blk)
	}
	return out
}

// TestREADMEOutput runs each command shown in a demo README and compares
// what it prints with the README, masking what changes from run to run.
func TestREADMEOutput(t *testing.T) {
	path := demotest.Kubeconfig(t)
	release, minor := demotest.K8sVersion(t)
	server := fmt.Sprintf("1.%d", minor)
	bin := buildDemos(t)
	demos := demos
	if *only != "" {
		demos = []string{*only}
	}
	kubeconfig, ns := path, ""
	if !*update {
		kubeconfig, ns = namespacedKubeconfig(t)
	}
	for _, d := range demos {
		readme := filepath.Join(d, "README.md")
		bs := blocks(t, readme, d, server)
		if len(bs) == 0 {
			t.Errorf("%s has no output block (<!-- output: go run ./%s -->)", readme, d)
		}
		// A demo's Chinese README, where it has one, shows the same runs
		// in the same order; the demos under reflector/ must have one.
		zh := filepath.Join(d, "README.zh-CN.md")
		var zhBlocks []block
		if _, err := os.Stat(zh); err == nil {
			zhBlocks = blocks(t, zh, d, server)
			if len(zhBlocks) != len(bs) {
				t.Errorf("%s has %d output blocks, %s has %d", zh, len(zhBlocks), readme, len(bs))
				zhBlocks = nil
			}
		} else if strings.Contains(d, "/") {
			t.Errorf("%s is missing", zh)
		}
		for i, b := range zhBlocks {
			if !slices.Equal(b.args, bs[i].args) || !slices.Equal(b.versions, bs[i].versions) {
				t.Errorf("%s block %d runs %q (Kubernetes %q), %s runs %q (%q)", zh, i+1, b.args, b.versions, readme, bs[i].args, bs[i].versions)
				zhBlocks = nil
				break
			}
		}
		text, _ := os.ReadFile(readme)
		zhText, _ := os.ReadFile(zh)
		var edits, zhEdits []edit
		for i := len(bs) - 1; i >= 0; i-- {
			b := bs[i]
			cmd := exec.Command(filepath.Join(bin, binName(d)), b.args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Errorf("go run ./%s %s: %v\n%s", d, strings.Join(b.args, " "), err, stderr.String())
				continue
			}
			// Against an older control plane, -update writes only the
			// blocks marked with its version; the unmarked ones are 1.37's.
			if *update && (b.versions != nil || minor == 37) {
				edits = append(edits, edit{b, stdout.String()})
				if zhBlocks != nil {
					zhEdits = append(zhEdits, edit{zhBlocks[i], stdout.String()})
				}
				continue
			}
			// Other tests create CRDs in *.example.com meanwhile; discovery
			// output lists them.
			dropCRDs := d == "discoveryclient"
			got := mask(asRelease137(stdout.String(), release), ns, dropCRDs)
			check := func(file string, b block) {
				if want := mask(asRelease137(b.expected, release), ns, dropCRDs); want != got {
					t.Errorf("%s: the output of `go run ./%s %s` differs from the README (masked; -want +got):\n%s",
						file, d, strings.Join(b.args, " "), diff(want, got))
				}
			}
			check(readme, b)
			if zhBlocks != nil {
				check(zh, zhBlocks[i])
			}
		}
		if *update {
			text, zhText = apply(text, edits), apply(zhText, zhEdits)
			if err := os.WriteFile(readme, text, 0o644); err != nil {
				t.Fatal(err)
			}
			if zhBlocks != nil {
				if err := os.WriteFile(zh, zhText, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// asRelease137 writes what an older control plane says about its own
// release as 1.37.2 says it: "v1.36.3" as "v1.37.2", and the minor version
// numbers of /version, so that a demo that only prints the server's version
// needs no block of its own per version. Nothing else changes: a block
// whose output differs in anything but the release number needs one.
func asRelease137(out, release string) string {
	var minor int
	if _, err := fmt.Sscanf(release, "v1.%d.", &minor); err != nil || minor == 37 {
		return out
	}
	return strings.NewReplacer(
		release, release137,
		fmt.Sprintf("(1/%d,", minor), "(1/37,",
		fmt.Sprintf(`"minor": "%d"`, minor), `"minor": "37"`,
		fmt.Sprintf(`"emulationMinor": "%d"`, minor), `"emulationMinor": "37"`,
		fmt.Sprintf(`"minCompatibilityMinor": "%d"`, minor-1), `"minCompatibilityMinor": "36"`,
	).Replace(out)
}

// release137 is the 1.37 patch release the unmarked blocks show: the
// k8s.io/kubernetes that hack/localcluster/go.mod requires.
var release137 = func() string {
	b, _ := os.ReadFile(filepath.Join("hack", "localcluster", "go.mod"))
	if m := regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes (v1\.37\.\d+)$`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "hack/localcluster/go.mod requires no k8s.io/kubernetes v1.37"
}()

// edit replaces a block's content with a new run's output (-update).
type edit struct {
	b   block
	out string
}

// apply makes the edits from the end of text backwards, so that each
// block's offsets still hold when it is replaced.
func apply(text []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(x, y edit) int { return y.b.start - x.b.start })
	for _, e := range edits {
		text = append(text[:e.b.start:e.b.start], append([]byte(e.out), text[e.b.end:]...)...)
	}
	return text
}

// namespacedKubeconfig writes a kubeconfig whose context uses a fresh
// namespace, so the demos run without -n and their output reads as in the
// README once the namespace's name is masked.
func namespacedKubeconfig(t *testing.T) (string, string) {
	// demotest.Namespace waits for kube-root-ca.crt: the README runs see it.
	ns := demotest.Namespace(t, demotest.Client(t), "readme")
	return demotest.ModifiedKubeconfig(t, func(c *clientcmdapi.Config) {
		c.Contexts[c.CurrentContext].Namespace = ns
	}), ns
}

// masks replace what differs between runs, and nothing else: generated
// names, UIDs, resourceVersions, continue tokens, durations, sizes that
// contain those, the Reflector's random watch timeout. Counts, columns and
// every other number must match the README exactly.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`demo-(restclient|clientset|dynamicclient|reflector|watch|informer|controller)-[a-z0-9]{5}`), "demo-$1-xxxxx"},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UID"},
	{regexp.MustCompile(`continue=[A-Za-z0-9_%-]+`), "continue=TOKEN"},
	{regexp.MustCompile(`\(attempts: \d+\)`), "(attempts: N)"}, // a controller may write in between
	// One request per group/version: any CRD on the server adds one.
	{regexp.MustCompile(`(legacy discovery \(one per group/version\)) +\d+ requests`), "$1 N requests"},
	// resourceVersion 123, resourceVersion="123", LastSyncResourceVersion is
	// now 123, resourceVersions [12 13 14]: etcd revisions.
	{regexp.MustCompile(`(?i)(resourceversions?(?: is now| now)?[ =:]"?)\d+`), "${1}RV"},
	{regexp.MustCompile(`(?i)(resourceversions? )\[[\d ]+\]`), "${1}[RVs]"},
	{regexp.MustCompile(`timeoutSeconds=\d+`), "timeoutSeconds=N"},
	{regexp.MustCompile(`\b\d+ bytes\b`), "N bytes"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`), "DURATION"},
}

// mask applies masks line by line. Column padding is collapsed only on a
// line that a mask changed, where a value of another width moved the
// columns; every other line must match to the space.
func mask(s, ns string, dropCRDs bool) string {
	if ns != "" {
		s = strings.ReplaceAll(s, ns, "default")
	}
	padding := regexp.MustCompile(`(\S) {2,}`)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		orig := l
		for _, m := range masks {
			l = m.re.ReplaceAllString(l, m.with)
		}
		if l != orig {
			l = padding.ReplaceAllString(l, "$1 ")
		}
		switch {
		case dropCRDs && strings.Contains(l, ".example.com"):
		// The API server sends a periodic BOOKMARK whenever its timer says,
		// sometimes within the second a demo runs.
		case strings.Contains(l, "BOOKMARK resourceVersion RV: no object changed"):
		default:
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// diff lists the lines that differ, with their numbers.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  -%s\n  +%s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestMaskKeepsWhatMatters: the masks hide what changes between runs, not
// counts or columns.
func TestMaskKeepsWhatMatters(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"  listed 5 pods in all", "  listed 6 pods in all"},
		{"  Check: 1000 configmaps", "  Check: 1001 configmaps"},
		{"NAME   SHORTNAMES", "NAME SHORTNAMES"},
		{"  created pod demo-restclient-abcde (resourceVersion 12); 4 more", "  created pod demo-restclient-abcde (resourceVersion 12); 5 more"},
	} {
		if mask(c.a, "", false) == mask(c.b, "", false) {
			t.Errorf("mask hides the difference between %q and %q", c.a, c.b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"store ADDED demo-reflector-abcde resourceVersion 999;  x", "store ADDED demo-reflector-fghij resourceVersion 1000; x"},
		{`WATCH resourceVersion="12" timeoutSeconds=301`, `WATCH resourceVersion="1234" timeoutSeconds=587`},
		{"  application/json   14693 bytes", "  application/json   9 bytes"},
	} {
		if mask(c.a, "", false) != mask(c.b, "", false) {
			t.Errorf("mask does not equate %q and %q", c.a, c.b)
		}
	}
}

// TestBlocksPickTheServersVersion: a block marked with a version stands in
// for the unmarked block of the same command on that version only.
func TestBlocksPickTheServersVersion(t *testing.T) {
	readme := filepath.Join(t.TempDir(), "README.md")
	text := "<!-- output: go run ./x -->\n```text\nA 1.37\n```\n" +
		"<!-- output: go run ./x -v -->\n```text\nB all\n```\n" +
		"<!-- output: go run ./x (Kubernetes 1.36, 1.35) -->\n```text\nA 1.35\n```\n"
	if err := os.WriteFile(readme, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string][]string{
		"1.37": {"A 1.37\n", "B all\n"},
		"1.36": {"A 1.35\n", "B all\n"},
		"1.34": {"A 1.37\n", "B all\n"},
		"1.35": {"A 1.35\n", "B all\n"},
	} {
		var got []string
		for _, b := range blocks(t, readme, "x", server) {
			got = append(got, b.expected)
		}
		if !slices.Equal(got, want) {
			t.Errorf("on %s: blocks %q, want %q", server, got, want)
		}
	}
	out := apply([]byte(text), []edit{
		{blocks(t, readme, "x", "1.35")[0], "new 1.35\n"},
		{blocks(t, readme, "x", "1.35")[1], "new B\n"},
	})
	if want := strings.NewReplacer("A 1.35", "new 1.35", "B all", "new B").Replace(text); string(out) != want {
		t.Errorf("apply:\n%s\nwant\n%s", out, want)
	}
}

// TestAsRelease137: only what the server says of its own release is
// rewritten, and release137 comes from hack/localcluster/go.mod.
func TestAsRelease137(t *testing.T) {
	if !regexp.MustCompile(`^v1\.37\.\d+$`).MatchString(release137) {
		t.Fatalf("release137 = %q", release137)
	}
	in := `v1.35.4 (1/35, linux/amd64) "minor": "35", "minCompatibilityMinor": "34" 111 resources v1.35.4`
	want := release137 + ` (1/37, linux/amd64) "minor": "37", "minCompatibilityMinor": "36" 111 resources ` + release137
	if got := asRelease137(in, "v1.35.4"); got != want {
		t.Errorf("asRelease137:\n got %s\nwant %s", got, want)
	}
	if got := asRelease137(in, release137); got != in {
		t.Errorf("on 1.37 asRelease137 changed %q to %q", in, got)
	}
}
