package ui_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// reflectiveExecutors are symbols of text/template's executor, which
// html/template runs: it looks methods up by a name known only at run
// time (reflect.Value.MethodByName), so the linker keeps every exported
// method of every type the binary can reach. The controller links the
// view, and its binary's pages are most of its resident memory (issue
// 13): the view must render without them.
var reflectiveExecutors = []string{
	"text/template.(*state).evalField",
	"html/template.(*Template).Execute",
	"html/template.(*Template).ExecuteTemplate",
}

// TestViewLinksNoTemplateExecutor builds a program that imports only this
// package and fails when its symbol table holds text/template's executor.
func TestViewLinksNoTemplateExecutor(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is needed to build a program that imports ui: %v", err)
	}
	if testing.Short() {
		t.Skip("builds a program: not in -short")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport \"airlock.dev/airlock/ui\"\n\nfunc main() { _, _ = ui.New(ui.Options{}) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "uionly")
	// Built from this package's directory, the file belongs to this module.
	build := exec.Command(goBin, "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of a program importing ui: %v\n%s", err, out)
	}
	out, err := exec.Command(goBin, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", bin, err)
	}
	syms := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			syms[strings.Join(f[2:], " ")] = true
		}
	}
	if !syms["airlock.dev/airlock/ui.New"] {
		t.Fatalf("the program's symbols lack airlock.dev/airlock/ui.New (%d symbols): it does not link the view, so the check below would mean nothing", len(syms))
	}
	for _, s := range reflectiveExecutors {
		if syms[s] {
			t.Errorf("a program importing only ui links %s: the view renders through text/template's reflective executor, which keeps every exported method of the binary; render with the templ components of pages.templ instead", s)
		}
	}
}
