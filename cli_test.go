package readme

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIFilesAreCopies keeps every demo folder copyable on its own: what
// all demos need around their lesson is in cli.go, the same file byte for
// byte in each folder, and this test fails when one copy drifts.
func TestCLIFilesAreCopies(t *testing.T) {
	mains, err := filepath.Glob("*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	nested, _ := filepath.Glob("*/*/main.go")
	mains = append(mains, nested...)
	var first []byte
	var firstPath string
	for _, m := range mains {
		dir := filepath.Dir(m)
		if strings.HasPrefix(dir, "hack") {
			continue // the control plane is not a demo
		}
		path := filepath.Join(dir, "cli.go")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s has a main.go but no cli.go: %v", dir, err)
			continue
		}
		if first == nil {
			first, firstPath = b, path
			continue
		}
		if !bytes.Equal(b, first) {
			t.Errorf("%s differs from %s: copy one over the other (cli.go is the same in every demo)", path, firstPath)
		}
	}
	if first == nil {
		t.Fatal("found no demo folders")
	}
}

// TestManifestIsTheFile keeps the manifest both READMEs explain and the
// file the dynamic client demo decodes one and the same.
func TestManifestIsTheFile(t *testing.T) {
	file, err := os.ReadFile("dynamicclient/nginx-deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, readme := range []string{"README.md", "README.zh-CN.md"} {
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, append(append([]byte("```yaml\n"), file...), "```\n"...)) {
			t.Errorf("%s has no yaml block equal to dynamicclient/nginx-deployment.yaml", readme)
		}
	}
}
