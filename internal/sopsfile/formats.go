package sopsfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"gopkg.in/ini.v1"
)

// Each format is read into the tree and written from it as sops's store of
// that format does (stores/yaml, stores/json, stores/dotenv, stores/ini), with
// the same libraries, so that the plain file is what `sops decrypt` writes.

var (
	errTooMany = errors.New("the file holds too many values")
	errTooDeep = errors.New("the file is nested too deeply")
)

func emit(f Format, branches []branch) ([]byte, error) {
	switch f {
	case YAML:
		return emitYAML(branches)
	case JSON:
		return emitJSON(branches)
	case Dotenv:
		return emitDotenv(branches)
	case INI:
		return emitINI(branches)
	case Binary:
		return emitBinary(branches)
	}
	return nil, errors.New("unknown format")
}

// counter bounds the values a reader makes, YAML aliases expanded.
type counter struct {
	n int
	// open are the YAML nodes being read: an alias to one of them is a
	// cycle, which sops would follow until its stack overflows.
	open map[*yaml.Node]bool
}

func (c *counter) add() error {
	c.n++
	if c.n > maxValues {
		return errTooMany
	}
	return nil
}

// enter marks n open, or refuses an alias cycle.
func (c *counter) enter(n *yaml.Node) error {
	if c.open == nil {
		c.open = map[*yaml.Node]bool{}
	}
	if c.open[n] {
		return errors.New("a YAML alias to a node that contains it")
	}
	c.open[n] = true
	return nil
}

// YAML.

func loadYAML(in []byte) ([]branch, error) {
	if len(in) > 0 {
		// sops decodes the first document into a map first, to refuse
		// duplicate keys (and yaml's alias bounds apply).
		if err := yaml.NewDecoder(bytes.NewReader(in)).Decode(make(map[string]any)); err != nil {
			return nil, errors.New("not a YAML mapping")
		}
	}
	var branches []branch
	var c counter
	d := yaml.NewDecoder(bytes.NewReader(in))
	for {
		var doc yaml.Node
		err := d.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errors.New("not valid YAML")
		}
		b, err := c.appendNode(&doc, make(branch, 0), false, 0)
		if err != nil {
			return nil, err
		}
		branches = append(branches, b)
	}
	return branches, nil
}

func commentLines(comment string, inline bool, add func(Comment)) {
	if comment == "" {
		return
	}
	for _, l := range strings.Split(comment, "\n") {
		if l != "" {
			add(Comment{Value: l[1:], Inline: inline})
		}
	}
}

func (c *counter) toList(comment string, list []any, inline bool) []any {
	commentLines(comment, inline, func(x Comment) { list = append(list, x) })
	return list
}

func (c *counter) toBranch(comment string, b branch, inline bool) branch {
	commentLines(comment, inline, func(x Comment) { b = append(b, item{key: x}) })
	return b
}

// nodeValue is sops's nodeToTreeValue.
func (c *counter) nodeValue(n *yaml.Node, commentsHandled bool, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	if err := c.add(); err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.SequenceNode:
		var out []any
		if !commentsHandled {
			out = c.toList(n.HeadComment, out, false)
			out = c.toList(n.LineComment, out, false)
		}
		for _, it := range n.Content {
			out = c.toList(it.HeadComment, out, false)
			out = c.toList(it.LineComment, out, true)
			v, err := c.nodeValue(it, true, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			out = c.toList(it.FootComment, out, false)
		}
		if !commentsHandled {
			out = c.toList(n.FootComment, out, false)
		}
		return out, nil
	case yaml.MappingNode:
		return c.appendNode(n, make(branch, 0), commentsHandled, depth+1)
	case yaml.ScalarNode:
		var v any
		_ = n.Decode(&v) // sops ignores the error: the value is nil
		return v, nil
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		if err := c.enter(n.Alias); err != nil {
			return nil, err
		}
		defer delete(c.open, n.Alias)
		return c.nodeValue(n.Alias, false, depth+1)
	case yaml.DocumentNode:
		return nil, errors.New("a YAML document inside a value")
	}
	return nil, nil
}

// appendNode is sops's appendYamlNodeToTreeBranch.
func (c *counter) appendNode(n *yaml.Node, b branch, commentsHandled bool, depth int) (branch, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	var err error
	if !commentsHandled {
		b = c.toBranch(n.HeadComment, b, false)
		b = c.toBranch(n.LineComment, b, false)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, it := range n.Content {
			if b, err = c.appendNode(it, b, false, depth+1); err != nil {
				return nil, err
			}
		}
	case yaml.SequenceNode:
		return nil, errors.New("a YAML document that is a list: sops reads only mappings")
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			b = c.toBranch(key.HeadComment, b, false)
			b = c.toBranch(key.LineComment, b, false)
			handled := value.Kind == yaml.ScalarNode || value.Kind == yaml.AliasNode
			if handled {
				b = c.toBranch(value.HeadComment, b, false)
				b = c.toBranch(value.LineComment, b, true)
			}
			var k any
			_ = key.Decode(&k)
			v, err := c.nodeValue(value, handled, depth+1)
			if err != nil {
				return nil, err
			}
			b = append(b, item{key: k, value: v})
			if handled {
				b = c.toBranch(value.FootComment, b, false)
			}
			b = c.toBranch(key.FootComment, b, false)
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" { // an empty document
			return b, nil
		}
		return nil, errors.New("a YAML document that is a single value: sops reads only mappings")
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, errors.New("a YAML alias without its anchor")
		}
		if err := c.enter(n.Alias); err != nil {
			return nil, err
		}
		defer delete(c.open, n.Alias)
		if b, err = c.appendNode(n.Alias, b, false, depth+1); err != nil {
			return nil, err
		}
	}
	if !commentsHandled {
		b = c.toBranch(n.FootComment, b, false)
	}
	return b, nil
}

func emitYAML(branches []branch) ([]byte, error) {
	var buf bytes.Buffer
	e := yaml.NewEncoder(&buf)
	e.SetIndent(4) // sops's default
	for _, b := range branches {
		mapping := &yaml.Node{Kind: yaml.MappingNode}
		yamlMapping(b, mapping)
		if err := e.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping}}); err != nil {
			return nil, err
		}
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func headComments(n *yaml.Node, comments []string) {
	if len(comments) == 0 {
		return
	}
	c := "#" + strings.Join(comments, "\n#")
	if n.HeadComment != "" {
		c += "\n" + n.HeadComment
	}
	n.HeadComment = c
}

func appendComments(to *string, comments []string) {
	if len(comments) == 0 {
		return
	}
	c := "#" + strings.Join(comments, "\n#")
	if *to != "" {
		*to += "\n" + c
	} else {
		*to = c
	}
}

func yamlNode(v any) *yaml.Node {
	switch v := v.(type) {
	case branch:
		n := &yaml.Node{Kind: yaml.MappingNode}
		yamlMapping(v, n)
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		yamlSequence(v, n)
		return n
	default:
		n := &yaml.Node{}
		_ = n.Encode(v) // as sops, which ignores the error
		return n
	}
}

// yamlSequence and yamlMapping put comments back as sops's appendSequence
// and appendTreeBranch do: comments before an element become its head
// comment, inline ones its line comment, trailing ones the foot comment of
// the last element.
func yamlSequence(in []any, n *yaml.Node) {
	p := placer{parent: n}
	for _, v := range in {
		if c, ok := v.(Comment); ok {
			p.comment(c)
			continue
		}
		child := yamlNode(v)
		p.element(child, child)
		n.Content = append(n.Content, child)
	}
	p.end()
}

func yamlMapping(b branch, n *yaml.Node) {
	p := placer{parent: n}
	for _, it := range b {
		if c, ok := it.key.(Comment); ok {
			p.comment(c)
			continue
		}
		key := &yaml.Node{}
		_ = key.Encode(it.key)
		value := yamlNode(it.value)
		p.element(key, value)
		n.Content = append(n.Content, key, value)
	}
	p.end()
}

// placer holds the comments met before the next element of a mapping or
// a list.
type placer struct {
	parent       *yaml.Node
	head, inline []string
	started      bool
	last         *yaml.Node // the last element (its key in a mapping)
}

func (p *placer) comment(c Comment) {
	if c.Inline {
		p.inline = append(p.inline, c.Value)
	} else {
		p.head = append(p.head, c.Value)
	}
}

// element places the comments met so far: those before the first element
// on the parent, then head comments on first and inline ones on line.
func (p *placer) element(first, line *yaml.Node) {
	if !p.started {
		headComments(p.parent, p.head)
		p.head, p.started = nil, true
	}
	headComments(first, p.head)
	appendComments(&line.LineComment, p.inline)
	p.head, p.inline = nil, nil
	p.last = first
}

// end places trailing comments as the foot comment of the last element,
// or on the parent when it has none.
func (p *placer) end() {
	rest := append(p.head, p.inline...)
	if len(rest) == 0 {
		return
	}
	if !p.started {
		headComments(p.parent, rest)
	} else {
		appendComments(&p.last.FootComment, rest)
	}
}

// JSON, and binary files (a JSON object whose "data" is the content).

func loadJSON(in []byte) ([]branch, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, errors.New("not valid JSON")
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object: sops reads only objects")
	}
	var c counter
	b, err := c.jsonObject(dec, 0)
	if err != nil {
		return nil, err
	}
	return []branch{b}, nil
}

func jsonNumber(t any) (any, error) {
	n, ok := t.(json.Number)
	if !ok {
		return t, nil
	}
	if i, err := n.Int64(); err == nil {
		return int(i), nil
	}
	f, err := n.Float64()
	if err != nil {
		return nil, errors.New("a JSON number out of range")
	}
	return f, nil
}

var errEndOfObject = errors.New("end of object")

// jsonObject reads the members of an object after its '{'. As in sops, an
// object cut short by the end of input ends there.
func (c *counter) jsonObject(dec *json.Decoder, depth int) (branch, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	var b branch
	for {
		it, err := c.jsonMember(dec, depth)
		if err == io.EOF || err == errEndOfObject {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		b = append(b, it)
	}
}

func (c *counter) jsonMember(dec *json.Decoder, depth int) (item, error) {
	var it item
	if err := c.add(); err != nil {
		return it, err
	}
	key, err := dec.Token()
	if err != nil && err != io.EOF {
		return it, errors.New("not valid JSON")
	}
	if k, ok := key.(string); ok {
		it.key = k
	} else if d, ok := key.(json.Delim); ok && d == '}' {
		return it, errEndOfObject
	} else {
		return it, errors.New("not valid JSON: an object member without a key")
	}
	value, err := dec.Token()
	if err == io.EOF {
		return it, err
	}
	if err != nil {
		return it, errors.New("not valid JSON")
	}
	if d, ok := value.(json.Delim); ok {
		switch d {
		case '[':
			it.value, err = c.jsonArray(dec, depth+1)
		case '{':
			it.value, err = c.jsonObject(dec, depth+1)
		}
		return it, err
	}
	it.value, err = jsonNumber(value)
	return it, err
}

func (c *counter) jsonArray(dec *json.Decoder, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	var out []any
	for {
		if err := c.add(); err != nil {
			return out, err
		}
		t, err := dec.Token()
		if err == io.EOF {
			return out, err
		}
		if err != nil {
			return out, errors.New("not valid JSON")
		}
		d, ok := t.(json.Delim)
		switch {
		case ok && d == ']':
			return out, nil
		case ok && d == '{':
			b, err := c.jsonObject(dec, depth+1)
			if err != nil {
				return out, err
			}
			out = append(out, b)
		case ok && d == '[':
			l, err := c.jsonArray(dec, depth+1)
			if err != nil {
				return out, err
			}
			out = append(out, l)
		default:
			v, err := jsonNumber(t)
			if err != nil {
				return out, err
			}
			out = append(out, v)
		}
	}
}

func jsonValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case branch:
		return jsonObjectBytes(v)
	case []any:
		var out bytes.Buffer
		out.WriteByte('[')
		first := true
		for _, x := range v {
			if _, ok := x.(Comment); ok {
				continue
			}
			if !first {
				out.WriteByte(',')
			}
			b, err := jsonValue(x)
			if err != nil {
				return nil, err
			}
			out.Write(b)
			first = false
		}
		out.WriteByte(']')
		return out.Bytes(), nil
	default:
		return json.Marshal(v)
	}
}

func jsonObjectBytes(b branch) ([]byte, error) {
	var out bytes.Buffer
	out.WriteByte('{')
	first := true
	for _, it := range b {
		if _, ok := it.key.(Comment); ok {
			continue
		}
		k, ok := it.key.(string)
		if !ok {
			return nil, errors.New("a key that is not a string")
		}
		if !first {
			out.WriteByte(',')
		}
		v, err := jsonValue(it.value)
		if err != nil {
			return nil, err
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		out.Write(kb)
		out.WriteString(": ")
		out.Write(v)
		first = false
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

func emitJSON(branches []branch) ([]byte, error) {
	if len(branches) == 0 {
		return nil, errors.New("no content")
	}
	b, err := jsonObjectBytes(branches[0])
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	// sops's JSON store with its default indent of 0: one member a line,
	// not indented.
	if err := json.Indent(&out, b, "", ""); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func emitBinary(branches []branch) ([]byte, error) {
	if len(branches) != 1 {
		return nil, errors.New("a binary file of more than one tree")
	}
	for _, it := range branches[0] {
		if k, ok := it.key.(string); ok && k == "data" {
			if s, ok := it.value.(string); ok {
				return []byte(s), nil
			}
			return nil, errors.New("the data of a binary file is not a string")
		}
	}
	return nil, errors.New("a binary file without data")
}

// dotenv.

func loadDotenv(in []byte) ([]branch, error) {
	var b branch
	for _, line := range bytes.Split(in, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if len(b) >= maxValues {
			return nil, errTooMany
		}
		if line[0] == '#' {
			b = append(b, item{key: Comment{Value: string(line[1:])}})
			continue
		}
		pos := bytes.IndexByte(line, '=')
		if pos == -1 {
			return nil, errors.New("a dotenv line without =")
		}
		b = append(b, item{key: string(line[:pos]), value: strings.ReplaceAll(string(line[pos+1:]), "\\n", "\n")})
	}
	return []branch{b}, nil
}

func emitDotenv(branches []branch) ([]byte, error) {
	if len(branches) == 0 {
		return nil, errors.New("no content")
	}
	var out bytes.Buffer
	for _, it := range branches[0] {
		switch it.value.(type) {
		case branch, []any:
			return nil, errors.New("a mapping or a list in a dotenv file")
		}
		if c, ok := it.key.(Comment); ok {
			fmt.Fprintf(&out, "#%s\n", c.Value)
			continue
		}
		v, ok := it.value.(string)
		if ok {
			v = strings.ReplaceAll(v, "\n", "\\n")
		} else {
			v = valueString(it.value)
		}
		fmt.Fprintf(&out, "%s=%s\n", it.key, v)
	}
	return out.Bytes(), nil
}

// valueString is sops's stores.ValToString, how dotenv and INI write a
// value that is not a string.
func valueString(v any) string {
	switch v := v.(type) {
	case float64:
		s := strconv.FormatFloat(v, 'G', -1, 64)
		if !strings.ContainsRune(s, '.') && !strings.ContainsRune(s, 'E') {
			s = strconv.FormatFloat(v, 'f', 1, 64)
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339)
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprintf("%v", v)
	}
}

// INI.

func loadINI(in []byte) ([]branch, error) {
	f, err := ini.LoadSources(ini.LoadOptions{AllowNonUniqueSections: true}, in)
	if err != nil {
		return nil, errors.New("not valid INI")
	}
	var b branch
	n := 0
	for _, s := range f.Sections() {
		var items branch
		if s.Comment != "" {
			items = append(items, item{key: Comment{Value: stripINIComment(s.Comment)}})
		}
		for _, k := range s.Keys() {
			items = append(items, item{key: k.Name(), value: k.Value()})
			if k.Comment != "" {
				items = append(items, item{key: Comment{Value: stripINIComment(k.Comment)}})
			}
		}
		n += len(items) + 1
		if n > maxValues {
			return nil, errTooMany
		}
		b = append(b, item{key: s.Name(), value: items})
	}
	return []branch{b}, nil
}

func stripINIComment(c string) string {
	if strings.HasPrefix(c, ";") {
		return strings.TrimLeft(c, "; ")
	}
	if strings.HasPrefix(c, "#") {
		return strings.TrimLeft(c, "# ")
	}
	return c
}

func emitINI(branches []branch) ([]byte, error) {
	f := ini.Empty(ini.LoadOptions{AllowNonUniqueSections: true})
	f.DeleteSection(ini.DefaultSection)
	for _, b := range branches {
		for _, it := range b {
			if _, ok := it.key.(Comment); ok {
				continue
			}
			name, ok := it.key.(string)
			if !ok {
				return nil, errors.New("a section name that is not a string")
			}
			s, err := f.NewSection(name)
			if err != nil {
				return nil, errors.New("a section cannot be written")
			}
			items, ok := it.value.(branch)
			if !ok {
				return nil, errors.New("an INI section that is not a mapping")
			}
			first := 0
			if len(items) > 0 {
				if c, ok := items[0].key.(Comment); ok {
					s.Comment = c.Value
					first = 1
				}
			}
			var last *ini.Key
			for _, kv := range items[first:] {
				if c, ok := kv.key.(Comment); ok {
					if last != nil {
						last.Comment = c.Value
					}
					continue
				}
				k, ok := kv.key.(string)
				if !ok {
					return nil, errors.New("an INI key that is not a string")
				}
				if last, err = s.NewKey(k, valueString(kv.value)); err != nil {
					return nil, errors.New("an INI key cannot be written")
				}
			}
		}
	}
	var out bytes.Buffer
	_, _ = f.WriteTo(&out) // as sops, which ignores the error
	return out.Bytes(), nil
}
