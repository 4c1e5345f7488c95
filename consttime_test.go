package sesh

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches identifiers that hold tokens, MACs or their hashes.
var secretName = regexp.MustCompile(`(?i)(token|validator|secret|hash|mac|tag|nonce)`)

// TestNoVariableTimeSecretCompare keeps secrets out of timing: in the
// packages that handle them, no == or != compares a secret-named value,
// and bytes.Equal, strings.EqualFold and strings.Compare are not used on
// them. Secrets are compared with crypto/subtle only.
func TestNoVariableTimeSecretCompare(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "csrf", "seal"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	if len(files) < 10 {
		t.Fatalf("found only %d files to check", len(files))
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if (x.Op == token.EQL || x.Op == token.NEQ) && !public(x.X) && !public(x.Y) &&
					(secretOperand(x.X) || secretOperand(x.Y)) {
					t.Errorf("%s: %s compares a secret with %s", fset.Position(x.Pos()), exprString(x.X), x.Op)
				}
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					pkg, _ := sel.X.(*ast.Ident)
					if pkg != nil && (pkg.Name == "bytes" && sel.Sel.Name == "Equal" ||
						pkg.Name == "strings" && (sel.Sel.Name == "EqualFold" || sel.Sel.Name == "Compare")) {
						for _, a := range x.Args {
							if secretOperand(a) {
								t.Errorf("%s: %s.%s on a secret", fset.Position(x.Pos()), pkg.Name, sel.Sel.Name)
							}
						}
					}
				}
			}
			return true
		})
	}
}

// publicName matches constants that describe the format of a secret
// (lengths, prefixes, kinds), which may be compared freely.
var publicName = regexp.MustCompile(`(?i)(len|bytes|size|format|prefix)$|^kind`)

// public reports whether e is public: nil, a length, or a format constant.
func public(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "nil" || publicName.MatchString(x.Name)
	case *ast.SelectorExpr:
		return publicName.MatchString(x.Sel.Name)
	case *ast.CallExpr:
		id, ok := x.Fun.(*ast.Ident)
		return ok && (id.Name == "len" || id.Name == "cap")
	case *ast.IndexExpr:
		return public(x.X)
	}
	return false
}

// secretOperand reports whether e names a secret: an identifier, field or
// call result whose name says so, excluding lengths and nil checks.
func secretOperand(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name != "nil" && secretName.MatchString(x.Name)
	case *ast.SelectorExpr:
		return secretName.MatchString(x.Sel.Name)
	case *ast.CallExpr:
		if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return false
		}
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
			return secretName.MatchString(sel.Sel.Name) && !strings.HasPrefix(sel.Sel.Name, "Is")
		}
	case *ast.IndexExpr:
		return secretOperand(x.X)
	case *ast.ParenExpr:
		return secretOperand(x.X)
	}
	return false
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return "expression"
}
