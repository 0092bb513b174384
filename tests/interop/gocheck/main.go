// gocheck runs Go's reference implementations (golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog) against records written by Tallystick, and signs notes
// for Tallystick to verify. It is a test helper: built by tests/interop, never shipped.
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type proofInput struct {
	Size     int64    `json:"size"`
	Root     string   `json:"root"`
	Index    int64    `json:"index"`
	Leaf     string   `json:"leaf"`
	OldSize  int64    `json:"old_size"`
	OldRoot  string   `json:"old_root"`
	Proof    []string `json:"proof"`
}

func hash(text string) tlog.Hash {
	var h tlog.Hash
	raw, err := hex.DecodeString(text)
	if err != nil || len(raw) != len(h) {
		fail("bad hash %q", text)
	}
	copy(h[:], raw)
	return h
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: gocheck generate NAME | sign SKEY < text | open VKEY < note | inclusion < json | consistency < json")
	}
	switch os.Args[1] {
	case "generate":
		skey, vkey, err := note.GenerateKey(nil, os.Args[2])
		if err != nil {
			fail("generate: %v", err)
		}
		fmt.Printf("%s\n%s\n", skey, vkey)
	case "sign":
		signer, err := note.NewSigner(os.Args[2])
		if err != nil {
			fail("signer: %v", err)
		}
		text, _ := readAll()
		msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
		if err != nil {
			fail("sign: %v", err)
		}
		os.Stdout.Write(msg)
	case "open":
		var verifiers []note.Verifier
		for _, vkey := range os.Args[2:] {
			v, err := note.NewVerifier(vkey)
			if err != nil {
				fail("verifier: %v", err)
			}
			verifiers = append(verifiers, v)
		}
		msg, _ := readAll()
		n, err := note.Open(msg, note.VerifierList(verifiers...))
		if err != nil {
			fail("open: %v", err)
		}
		var names []string
		for _, sig := range n.Sigs {
			names = append(names, sig.Name)
		}
		fmt.Printf("verified %s\n%s", strings.Join(names, ","), n.Text)
	case "inclusion", "consistency":
		raw, _ := readAll()
		var in proofInput
		if err := json.Unmarshal(raw, &in); err != nil {
			fail("json: %v", err)
		}
		var proof []tlog.Hash
		for _, item := range in.Proof {
			proof = append(proof, hash(item))
		}
		var err error
		if os.Args[1] == "inclusion" {
			err = tlog.CheckRecord(tlog.RecordProof(proof), in.Size, hash(in.Root), in.Index, hash(in.Leaf))
		} else {
			err = tlog.CheckTree(tlog.TreeProof(proof), in.Size, hash(in.Root), in.OldSize, hash(in.OldRoot))
		}
		if err != nil {
			fail("%s: %v", os.Args[1], err)
		}
		fmt.Println("ok")
	default:
		fail("unknown command %q", os.Args[1])
	}
}

func readAll() ([]byte, error) {
	var out []byte
	buf := make([]byte, 1<<16)
	for {
		n, err := os.Stdin.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, nil
		}
	}
}
