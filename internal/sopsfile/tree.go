package sopsfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The tree is sops's: a branch is an ordered list of items whose key is a
// string or a Comment; a value is a string, int, float64, bool, time.Time,
// []byte, nil, a Comment, a branch or a []any.

// Comment is a comment line of a file. Its shape is sops's Comment's, so
// that a comment found where a value is expected is written out as sops
// writes it (JSON and YAML encode the struct, dotenv and INI print it).
type Comment struct {
	Value  string
	Inline bool
}

type item struct {
	key   any
	value any
}

type branch []item

// macOnlyEncryptedInit starts the MAC of a file with mac_only_encrypted,
// so that its MAC differs from the MAC of the same values without it
// (sops's MACOnlyEncryptedInitialization).
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// walker decrypts a tree in place and hashes its MAC, as sops's
// Tree.Decrypt does.
type walker struct {
	m    Metadata
	key  []byte
	hash hash.Hash
	// Compiled rules; a regex that does not compile never matches, as
	// sops's regexp.Match ignores the error.
	unencRe, encRe, unencCommentRe, encCommentRe *regexp.Regexp
}

func newWalker(m Metadata, key []byte) (*walker, error) {
	w := &walker{m: m, key: key, hash: sha512.New()}
	if m.MACOnlyEncrypted {
		w.hash.Write(macOnlyEncryptedInit)
	}
	compile := func(s string) *regexp.Regexp {
		if s == "" {
			return nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil
		}
		return re
	}
	w.unencRe = compile(m.UnencryptedRegex)
	w.encRe = compile(m.EncryptedRegex)
	w.unencCommentRe = compile(m.UnencryptedCommentRegex)
	w.encCommentRe = compile(m.EncryptedCommentRegex)
	return w, nil
}

// walkValue returns the decrypted value of in. A comment in a list is
// a value, as in sops.
func (w *walker) walkValue(in any, path []string, comments [][]string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("too deep")
	}
	switch in := in.(type) {
	case string, int, bool, float64, time.Time, Comment:
		return w.leaf(in, path, comments)
	case []byte:
		return w.leaf(string(in), path, comments)
	case branch:
		return in, w.walkBranch(in, path, comments, depth+1)
	case []any:
		return in, w.walkSlice(in, path, comments, depth+1)
	case nil:
		return nil, nil
	default:
		return nil, errors.New("a value of an unknown type")
	}
}

func (w *walker) walkSlice(in []any, path []string, comments [][]string, depth int) error {
	comments = append(comments, []string{})
	for i, v := range in {
		c, isComment := v.(Comment)
		if isComment {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.Value)
		}
		nv, err := w.walkValue(v, path, comments, depth)
		if err != nil {
			return err
		}
		in[i] = nv
		if !isComment {
			comments[len(comments)-1] = []string{}
		}
	}
	return nil
}

func (w *walker) walkBranch(in branch, path []string, comments [][]string, depth int) error {
	if depth > maxDepth {
		return errors.New("too deep")
	}
	comments = append(comments, []string{})
	for i, it := range in {
		if c, ok := it.key.(Comment); ok {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.Value)
			v, err := w.walkValue(c, path, comments, depth)
			if err != nil {
				return err
			}
			switch v := v.(type) {
			case Comment:
				in[i].key = v
			case string:
				in[i].key = Comment{Value: v, Inline: c.Inline}
			default:
				return errors.New("a comment decrypts to a value")
			}
			continue
		}
		c, valueIsComment := it.value.(Comment)
		if valueIsComment {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.Value)
		}
		key, ok := it.key.(string)
		if !ok {
			return errors.New("a key that is not a string")
		}
		v, err := w.walkValue(it.value, append(path, key), comments, depth)
		if err != nil {
			return err
		}
		in[i].value = v
		if !valueIsComment {
			comments[len(comments)-1] = []string{}
		}
	}
	return nil
}

// leaf decrypts one value if the rules say it is encrypted, and adds it
// to the MAC.
func (w *walker) leaf(in any, path []string, comments [][]string) (any, error) {
	c, isComment := in.(Comment)
	encrypted := w.encrypted(path, comments, isComment)
	v := in
	if encrypted {
		ad := strings.Join(path, ":") + ":"
		if isComment {
			d, err := decryptValue(c.Value, w.key, ad)
			if err != nil {
				d = c // sops keeps a comment that does not decrypt: written by an older sops
			}
			v = d
		} else if s, ok := in.(string); ok {
			d, err := decryptValue(s, w.key, ad)
			if err != nil {
				return nil, err
			}
			v = d
		} else {
			return nil, errors.New("an encrypted value that is not a string")
		}
	}
	if !w.m.MACOnlyEncrypted || encrypted {
		// A value may decrypt to a comment (a comment in a list): sops
		// leaves it out of the MAC too.
		if _, ok := v.(Comment); !ok {
			b, err := toBytes(v)
			if err != nil {
				return nil, err
			}
			w.hash.Write(b)
		}
	}
	return v, nil
}

// encrypted is sops's Tree.shouldBeEncrypted.
func (w *walker) encrypted(path []string, comments [][]string, isComment bool) bool {
	m := w.m
	encrypted := true
	if m.UnencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, m.UnencryptedSuffix) {
				encrypted = false
				break
			}
		}
	}
	if m.EncryptedSuffix != "" {
		encrypted = false
		for _, p := range path {
			if strings.HasSuffix(p, m.EncryptedSuffix) {
				encrypted = true
				break
			}
		}
	}
	if m.UnencryptedRegex != "" {
		for _, p := range path {
			if w.unencRe != nil && w.unencRe.MatchString(p) {
				encrypted = false
				break
			}
		}
	}
	if m.EncryptedRegex != "" {
		encrypted = false
		for _, p := range path {
			if w.encRe != nil && w.encRe.MatchString(p) {
				encrypted = true
				break
			}
		}
	}
	if m.UnencryptedCommentRegex != "" {
	unencrypted:
		for _, cs := range comments {
			for _, c := range cs {
				if w.unencCommentRe != nil && w.unencCommentRe.MatchString(c) {
					encrypted = false
					break unencrypted
				}
			}
		}
	}
	if m.EncryptedCommentRegex != "" {
		last := len(comments) - 1
		lastLen := len(comments[last])
		encrypted = false
	enc:
		for i, cs := range comments {
			for j, c := range cs {
				// The comment line that matches is itself not encrypted:
				// only comments after it are.
				if isComment && i == last && j == lastLen-1 {
					continue
				}
				if w.encCommentRe != nil && w.encCommentRe.MatchString(c) {
					encrypted = true
					break enc
				}
			}
		}
	}
	return encrypted
}

// toBytes is what sops hashes of a value.
func toBytes(in any) ([]byte, error) {
	switch in := in.(type) {
	case string:
		return []byte(in), nil
	case int:
		return []byte(strconv.Itoa(in)), nil
	case float64:
		return []byte(strconv.FormatFloat(in, 'f', -1, 64)), nil
	case bool:
		if in {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case []byte:
		return in, nil
	case time.Time:
		return in.MarshalText()
	case Comment:
		return []byte(in.Value), nil
	default:
		return nil, errors.New("a value of an unknown type")
	}
}

// encValue is sops's form of an encrypted value. Like sops's, it is not
// anchored at the end.
var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// decryptValue is sops's aes.Cipher.Decrypt: AES-256-GCM with the IV of
// the value and ad as additional data, then the value's type. An empty
// string is an empty string.
func decryptValue(s string, key []byte, ad string) (any, error) {
	if s == "" {
		return "", nil
	}
	m := encValue.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("not an encrypted value")
	}
	data, err1 := base64.StdEncoding.DecodeString(m[1])
	iv, err2 := base64.StdEncoding.DecodeString(m[2])
	tag, err3 := base64.StdEncoding.DecodeString(m[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, errors.New("an encrypted value is not base64")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("the data key is not an AES key")
	}
	if len(iv) == 0 {
		return nil, errors.New("an encrypted value has no IV")
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, errors.New("an encrypted value has a bad IV")
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(ad))
	if err != nil {
		return nil, errors.New("a value does not decrypt with AES-GCM")
	}
	str := string(plain)
	switch m[4] {
	case "str":
		return str, nil
	case "int":
		return strconv.Atoi(str)
	case "float":
		return strconv.ParseFloat(str, 64)
	case "bytes":
		return plain, nil
	case "bool":
		return strconv.ParseBool(str)
	case "time":
		var t time.Time
		err := t.UnmarshalText(plain)
		return t, err
	case "comment":
		return Comment{Value: str}, nil
	default:
		return nil, errors.New("an encrypted value of an unknown type")
	}
}
