// Command witnesslog is a transparency log that is not Sealtrail, built only on the Go ecosystem's
// libraries (github.com/transparency-dev/merkle, golang.org/x/mod/sumdb/note and
// github.com/transparency-dev/formats), used to check `sealtrail witness` from the outside.
//
//	witnesslog keygen -origin ORIGIN        prints the log's private key, then its vkey
//	witnesslog run -skey S -vkey V -url URL -witness-vkey W
//
// run grows a log to 300 leaves, submits checkpoints to the witness over c2sp.org/tlog-witness
// (learning the witness's size from 409 answers), verifies every cosignature with the Go
// libraries, checks that forks, rollbacks, bad proofs, wrong keys, unknown logs and malformed
// bodies are refused with the protocol's statuses, and prints a JSON summary. Exit 1 on any
// disagreement.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

type logger struct {
	origin  string
	signer  note.Signer
	tree    *testonly.Tree
	witness note.Verifier
	logV    note.Verifier
	url     string
	client  *http.Client
	known   uint64
	times   []time.Duration
}

func newTree(tag string, n int) *testonly.Tree {
	t := testonly.New(rfc6962.DefaultHasher)
	for i := 0; i < n; i++ {
		t.AppendData([]byte(fmt.Sprintf("%s leaf %d", tag, i)))
	}
	return t
}

func (l *logger) signed(t *testonly.Tree, size uint64, signer note.Signer) []byte {
	cp := log.Checkpoint{Origin: l.origin, Size: size, Hash: t.HashAt(size)}
	msg, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, signer)
	if err != nil {
		panic(err)
	}
	return msg
}

func body(old uint64, proof [][]byte, signed []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(signed)
	return b.Bytes()
}

func (l *logger) post(b []byte) (int, string, string, error) {
	start := time.Now()
	resp, err := l.client.Post(l.url+"/add-checkpoint", "text/plain", bytes.NewReader(b))
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	l.times = append(l.times, time.Since(start))
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(data), err
}

func (l *logger) proof(t *testonly.Tree, old, size uint64) [][]byte {
	if old == 0 || old == size {
		return nil
	}
	p, err := t.ConsistencyProof(old, size)
	if err != nil {
		panic(err)
	}
	return p
}

// submit asks the witness to cosign size of t, retrying once from the size a 409 names.
func (l *logger) submit(t *testonly.Tree, size uint64) error {
	for attempt := 0; attempt < 2; attempt++ {
		signed := l.signed(t, size, l.signer)
		status, ctype, text, err := l.post(body(l.known, l.proof(t, l.known, size), signed))
		if err != nil {
			return err
		}
		switch status {
		case http.StatusOK:
			return l.checkCosignature(signed, text, size)
		case http.StatusConflict:
			if ctype != "text/x.tlog.size" {
				return fmt.Errorf("409 with Content-Type %q", ctype)
			}
			n, err := strconv.ParseUint(strings.TrimSuffix(text, "\n"), 10, 64)
			if err != nil || !strings.HasSuffix(text, "\n") {
				return fmt.Errorf("409 body %q is not a size line", text)
			}
			l.known = n
		default:
			return fmt.Errorf("size %d: status %d: %s", size, status, text)
		}
	}
	return fmt.Errorf("size %d: still conflicting", size)
}

func (l *logger) checkCosignature(signed []byte, lines string, size uint64) error {
	if !strings.HasPrefix(lines, "— ") || !strings.HasSuffix(lines, "\n") {
		return fmt.Errorf("200 body is not signature lines: %q", lines)
	}
	n, err := note.Open(append(signed, lines...), note.VerifierList(l.logV, l.witness))
	if err != nil {
		return fmt.Errorf("cosigned note does not open: %v", err)
	}
	for _, s := range n.Sigs {
		if s.Name == l.witness.Name() && s.Hash == l.witness.KeyHash() {
			ts, err := fnote.CoSigV1Timestamp(s)
			if err != nil || time.Since(ts) > 5*time.Minute || time.Until(ts) > 5*time.Minute {
				return fmt.Errorf("cosignature timestamp %v: %v", ts, err)
			}
			l.known = size
			return nil
		}
	}
	return errors.New("no verified cosignature by the witness")
}

func (l *logger) expect(what string, want int, b []byte) error {
	status, _, text, err := l.post(b)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s: status %d, want %d (%s)", what, status, want, text)
	}
	return nil
}

func (l *logger) refusals() error {
	top := l.known
	fork := newTree("fork", 310)
	other, _, _ := note.GenerateKey(nil, l.origin)
	otherSigner, _ := note.NewSigner(other)
	strangerKey, _, _ := note.GenerateKey(nil, "example.org/stranger")
	stranger, _ := note.NewSigner(strangerKey)
	strangerLog := &logger{origin: "example.org/stranger"}
	checks := []struct {
		what string
		want int
		body []byte
	}{
		{"fork at the same size", 422, body(top, nil, l.signed(fork, top, l.signer))},
		{"fork that extends", 422, body(top, l.proof(fork, top, 310), l.signed(fork, 310, l.signer))},
		{"bad proof", 422, body(top, l.proof(l.tree, 17, 300)[1:], l.signed(l.tree, 300, l.signer))},
		{"rollback naming the witness's size", 400, body(top, nil, l.signed(l.tree, 200, l.signer))},
		{"rollback naming its own size", 409, body(200, nil, l.signed(l.tree, 200, l.signer))},
		{"signed by another key", 403, body(top, nil, l.signed(l.tree, top, otherSigner))},
		{"unknown origin", 404, body(0, nil, strangerLog.signed(l.tree, 5, stranger))},
		{"malformed", 400, []byte("old x\n\n")},
	}
	for _, c := range checks {
		if err := l.expect(c.what, c.want, c.body); err != nil {
			return err
		}
	}
	return nil
}

func (l *logger) monitored() error {
	sum := sha256.Sum256([]byte(l.origin))
	resp, err := l.client.Get(l.url + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	n, err := note.Open(data, note.VerifierList(l.logV, l.witness))
	if err != nil || len(n.Sigs) != 2 {
		return fmt.Errorf("monitoring checkpoint does not carry both signatures: %v", err)
	}
	cp := &log.Checkpoint{}
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Size != l.known {
		return fmt.Errorf("monitoring checkpoint at %d, want %d: %v", cp.Size, l.known, err)
	}
	return nil
}

func run(skey, vkey, url, witnessVkey string) error {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	witness, err := fnote.NewVerifierForCosignatureV1(witnessVkey)
	if err != nil {
		return fmt.Errorf("witness vkey: %v", err)
	}
	l := &logger{origin: signer.Name(), signer: signer, tree: newTree("main", 300), witness: witness,
		url: url, client: &http.Client{Timeout: 30 * time.Second}}
	logV, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	l.logV = logV
	cosigned := 0
	for i, size := range []uint64{1, 5, 5, 17, 64, 65, 128, 200, 255, 256, 300} {
		if i == 4 {
			l.known = 3 // a stale belief: the witness answers 409 with its size
		}
		if err := l.submit(l.tree, size); err != nil {
			return err
		}
		cosigned++
	}
	if err := l.refusals(); err != nil {
		return err
	}
	if err := l.monitored(); err != nil {
		return err
	}
	ms := make([]float64, len(l.times))
	for i, d := range l.times {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	sort.Float64s(ms)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"origin": l.origin, "cosigned": cosigned, "size": l.known, "requests": len(ms),
		"p50_ms": ms[len(ms)/2], "max_ms": ms[len(ms)-1],
	})
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: witnesslog keygen -origin O | run -skey S -vkey V -url URL -witness-vkey W")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	origin := fs.String("origin", "example.org/go-log", "log origin (keygen)")
	skey := fs.String("skey", "", "the log's private key (run)")
	vkey := fs.String("vkey", "", "the log's verifier key (run)")
	url := fs.String("url", "", "the witness's submission prefix (run)")
	wvkey := fs.String("witness-vkey", "", "the witness's cosignature vkey (run)")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "keygen":
		sk, vk, err := note.GenerateKey(nil, *origin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(sk)
		fmt.Println(vk)
	case "run":
		if err := run(*skey, *vkey, *url, *wvkey); err != nil {
			fmt.Fprintln(os.Stderr, "witnesslog:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}
