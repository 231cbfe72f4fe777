package images

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadLdSoConf(t *testing.T) {
	dir := t.TempDir()
	mustMkdir(t, filepath.Join(dir, "ld.so.conf.d"))
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ld.so.conf", "# comment\n/opt/first\ninclude ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/opt/last/ # trailing comment\n")
	write("ld.so.conf.d/b.conf", "/opt/b\n")
	write("ld.so.conf.d/a.conf", "/opt/a1 /opt/a2\n")
	write("ld.so.conf.d/ignored.txt", "/opt/not-included\n")
	write("self.conf", "include self.conf\n")

	tests := []struct {
		name    string
		conf    string
		want    []string
		wantErr string
	}{
		{
			name: "includes in sorted order",
			conf: "ld.so.conf",
			want: []string{"/opt/first", "/opt/a1", "/opt/a2", "/opt/b", "/opt/last"},
		},
		{name: "missing file lists nothing", conf: "absent.conf"},
		{name: "include loop", conf: "self.conf", wantErr: "nested too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readLdSoConf(filepath.Join(dir, tt.conf), 0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readLdSoConf = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("readLdSoConf = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestResolveLibraries(t *testing.T) {
	binary := buildCgoProgram(t)
	// A search directory listed first but holding a file that is not an ELF
	// object of the right kind must be passed over, as ld.so does.
	decoyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(decoyDir, "libc.so.6"), []byte("not ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "ld.so.conf")
	if err := os.WriteFile(conf, []byte(decoyDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolver, err := newLibraryResolver(conf)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := resolver.resolve([]string{binary})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.interpreters) != 1 || !filepath.IsAbs(deps.interpreters[0]) {
		t.Errorf("interpreters = %v, want one absolute path", deps.interpreters)
	}
	var libc string
	for _, lib := range deps.libraries {
		if filepath.Base(lib) == "libc.so.6" {
			libc = lib
		}
	}
	if libc == "" || !resolver.defaultDirs[filepath.Dir(libc)] {
		t.Errorf("libraries = %v, want libc.so.6 from a default directory", deps.libraries)
	}
	if len(deps.extraDirs) != 0 {
		t.Errorf("extraDirs = %v, want none for a libc-only program", deps.extraDirs)
	}

	// With nowhere to look, the error names the library and who needs it.
	empty := &libraryResolver{defaultDirs: map[string]bool{}}
	if _, err := empty.resolve([]string{binary}); err == nil || !strings.Contains(err.Error(), "shared library libc.so.6 needed by "+binary) {
		t.Errorf("resolve with no search directories: error %v, want it to name libc.so.6 and %s", err, binary)
	}
}
