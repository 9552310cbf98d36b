package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a ListObjectsV2 page with encoding/xml through a generic
// node decoder: about 45% of a mount's CPU while it lists a warm server,
// and a good part of a no-op re-run's. fastList swaps that deserializer,
// for ListObjectsV2 calls only, for a scanner of the one document shape S3
// returns (ListBucketResult), several times cheaper. Whatever it does not
// expect (an error status, a DOCTYPE, an entity it does not know, a
// malformed document or a field that does not parse) goes to the SDK's own
// deserializer, with the body as read: the output never depends on the
// fast path.

// fastListID is the SDK's id of an operation's deserializer middleware.
const fastListID = "OperationDeserializer"

// withFastList is a ListObjectsV2 option (APIOptions) installing fastList;
// fallbacks counts the pages handed to the SDK's deserializer.
func withFastList(fallbacks *atomic.Int64) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			m := &fastList{fallbacks: fallbacks}
			sdk, err := stack.Deserialize.Swap(fastListID, m)
			m.sdk = sdk
			return err
		})
	}
}

// fastList is the ListObjectsV2 deserializer (see above).
type fastList struct {
	sdk       middleware.DeserializeMiddleware
	fallbacks *atomic.Int64
}

func (*fastList) ID() string { return fastListID }

func (m *fastList) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode != 200 {
		return m.sdk.HandleDeserialize(ctx, in, served{out, md, err})
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
	if err != nil {
		resp.Body.Close()
		return out, md, fmt.Errorf("s3: reading ListObjectsV2 response: %w", err)
	}
	if len(body) > maxListPage {
		// Not a page S3 writes: the SDK streams the rest.
		m.fallbacks.Add(1)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return m.sdk.HandleDeserialize(ctx, in, served{out, md, nil})
	}
	resp.Body.Close()
	page, perr := parseListV2(body)
	if perr != nil {
		m.fallbacks.Add(1)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return m.sdk.HandleDeserialize(ctx, in, served{out, md, nil})
	}
	out.Result = page
	return out, md, nil
}

// maxListPage bounds the listing page fastList holds in memory. A page of
// 1,000 keys of 1,024 bytes, URL-encoded, is about 4 MiB.
const maxListPage = 16 << 20

// served is a DeserializeHandler that returns a response already received.
type served struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (s served) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return s.out, s.md, s.err
}

// errUnexpected: the document is not one parseListV2 reads; the SDK will.
var errUnexpected = errors.New("s3: unexpected ListObjectsV2 document")

// parseListV2 reads a ListBucketResult document: the fields ferry uses and
// those the paginator needs. Unknown elements are skipped.
func parseListV2(doc []byte) (*s3.ListObjectsV2Output, error) {
	sc := &xmlScanner{b: doc}
	if err := sc.root("ListBucketResult"); err != nil {
		return nil, err
	}
	out := &s3.ListObjectsV2Output{}
	err := sc.children(func(name string) error {
		var err error
		switch name {
		case "Contents":
			var o types.Object
			err = sc.children(func(name string) error { return sc.object(&o, name) })
			out.Contents = append(out.Contents, o)
		case "CommonPrefixes":
			var p types.CommonPrefix
			err = sc.children(func(name string) error {
				if name != "Prefix" {
					return sc.skip()
				}
				return sc.str(&p.Prefix)
			})
			out.CommonPrefixes = append(out.CommonPrefixes, p)
		case "Name":
			err = sc.str(&out.Name)
		case "Prefix":
			err = sc.str(&out.Prefix)
		case "Delimiter":
			err = sc.str(&out.Delimiter)
		case "ContinuationToken":
			err = sc.str(&out.ContinuationToken)
		case "NextContinuationToken":
			err = sc.str(&out.NextContinuationToken)
		case "StartAfter":
			err = sc.str(&out.StartAfter)
		case "EncodingType":
			var s string
			if s, err = sc.text(); err == nil {
				out.EncodingType = types.EncodingType(s)
			}
		case "IsTruncated":
			var b bool
			if b, err = sc.bool(); err == nil {
				out.IsTruncated = aws.Bool(b)
			}
		case "KeyCount":
			err = sc.int32(&out.KeyCount)
		case "MaxKeys":
			err = sc.int32(&out.MaxKeys)
		default:
			err = sc.skip()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// A count that disagrees means an entry this scanner did not see: the
	// SDK's deserializer decides.
	if n := out.KeyCount; n != nil && int(*n) != len(out.Contents)+len(out.CommonPrefixes) {
		return nil, errUnexpected
	}
	return out, sc.end()
}

// object reads child name of a Contents element into o.
func (sc *xmlScanner) object(o *types.Object, name string) error {
	switch name {
	case "Key":
		return sc.str(&o.Key)
	case "ETag":
		return sc.str(&o.ETag)
	case "Size":
		n, err := sc.int()
		o.Size = aws.Int64(n)
		return err
	case "LastModified":
		s, err := sc.text()
		if err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return errUnexpected
		}
		o.LastModified = aws.Time(t)
		return nil
	case "StorageClass":
		s, err := sc.text()
		o.StorageClass = types.ObjectStorageClass(s)
		return err
	case "ChecksumAlgorithm":
		s, err := sc.text()
		o.ChecksumAlgorithm = append(o.ChecksumAlgorithm, types.ChecksumAlgorithm(s))
		return err
	case "ChecksumType":
		s, err := sc.text()
		o.ChecksumType = types.ChecksumType(s)
		return err
	}
	return sc.skip()
}

// xmlScanner walks the elements of a small, trusted-shape XML document:
// no DOCTYPE, attributes ignored, comments and processing instructions
// skipped, CDATA and the five XML entities and character references
// decoded. Anything else is errUnexpected.
type xmlScanner struct {
	b []byte
	i int
	// pending is a start tag read ahead by children (its name), and
	// empty tells that it was self-closing.
	pending string
	empty   bool
}

// token kinds
const (
	tokEOF = iota
	tokStart
	tokEnd
	tokText
)

// next returns the next token: a start tag's name (and whether it closes
// itself), an end tag's name, or a text run (decoded).
func (sc *xmlScanner) next() (kind int, val string, empty bool, err error) {
	for {
		if sc.i >= len(sc.b) {
			return tokEOF, "", false, nil
		}
		rest := sc.b[sc.i:]
		if rest[0] != '<' {
			n := bytes.IndexByte(rest, '<')
			if n < 0 {
				n = len(rest)
			}
			sc.i += n
			s, err := unescape(rest[:n])
			return tokText, s, false, err
		}
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			if err := sc.skipPast("?>"); err != nil {
				return 0, "", false, err
			}
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := sc.skipPast("-->"); err != nil {
				return 0, "", false, err
			}
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			n := bytes.Index(rest, []byte("]]>"))
			if n < 0 {
				return 0, "", false, errUnexpected
			}
			sc.i += n + 3
			return tokText, string(rest[len("<![CDATA["):n]), false, nil
		case bytes.HasPrefix(rest, []byte("<!")):
			return 0, "", false, errUnexpected // DOCTYPE and the like
		case bytes.HasPrefix(rest, []byte("</")):
			n := bytes.IndexByte(rest, '>')
			if n < 0 {
				return 0, "", false, errUnexpected
			}
			sc.i += n + 1
			return tokEnd, string(bytes.TrimSpace(rest[2:n])), false, nil
		default:
			return sc.startTag(rest)
		}
	}
}

// startTag reads the start tag at the head of rest.
func (sc *xmlScanner) startTag(rest []byte) (int, string, bool, error) {
	end := bytes.IndexAny(rest, " \t\r\n/>")
	if end <= 1 {
		return 0, "", false, errUnexpected
	}
	name := string(rest[1:end])
	var quote byte
	for j := end; j < len(rest); j++ {
		c := rest[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			sc.i += j + 1
			return tokStart, name, rest[j-1] == '/', nil
		}
	}
	return 0, "", false, errUnexpected
}

func (sc *xmlScanner) skipPast(marker string) error {
	n := bytes.Index(sc.b[sc.i:], []byte(marker))
	if n < 0 {
		return errUnexpected
	}
	sc.i += n + len(marker)
	return nil
}

// root reads up to the start tag of the root element, which must be name.
func (sc *xmlScanner) root(name string) error {
	for {
		kind, val, empty, err := sc.next()
		switch {
		case err != nil:
			return err
		case kind == tokText && strings.TrimSpace(val) == "":
		case kind == tokStart && val == name && !empty:
			return nil
		default:
			return errUnexpected
		}
	}
}

// children calls fn with the name of each child element of the element
// just opened, positioned after the child's start tag; fn must consume the
// child up to its end tag (text, str, int, bool, skip or children). Text
// between children is ignored. It returns after the parent's end tag.
func (sc *xmlScanner) children(fn func(name string) error) error {
	if sc.empty {
		sc.empty = false
		return nil
	}
	for {
		kind, val, empty, err := sc.next()
		switch {
		case err != nil:
			return err
		case kind == tokText:
		case kind == tokEnd:
			return nil
		case kind == tokStart && strings.Contains(val, ":"):
			return errUnexpected // a namespace prefix: not S3's shape
		case kind == tokStart:
			sc.pending, sc.empty = val, empty
			if err := fn(val); err != nil {
				return err
			}
		default:
			return errUnexpected
		}
	}
}

// text reads the text content of the current element (see children) and
// its end tag; an element with children is errUnexpected.
func (sc *xmlScanner) text() (string, error) {
	if sc.empty {
		sc.empty = false
		return "", nil
	}
	var s string
	for {
		kind, val, _, err := sc.next()
		switch {
		case err != nil:
			return "", err
		case kind == tokText:
			s += val
		case kind == tokEnd && val == sc.pending:
			return s, nil
		default:
			return "", errUnexpected
		}
	}
}

// skip consumes the current element, children included.
func (sc *xmlScanner) skip() error {
	if sc.empty {
		sc.empty = false
		return nil
	}
	depth := 1
	for depth > 0 {
		kind, _, empty, err := sc.next()
		switch {
		case err != nil:
			return err
		case kind == tokEOF:
			return errUnexpected
		case kind == tokStart && !empty:
			depth++
		case kind == tokEnd:
			depth--
		}
	}
	return nil
}

func (sc *xmlScanner) str(p **string) error {
	s, err := sc.text()
	*p = aws.String(s)
	return err
}

func (sc *xmlScanner) int32(p **int32) error {
	n, err := sc.int()
	*p = aws.Int32(int32(n))
	return err
}

func (sc *xmlScanner) int() (int64, error) {
	s, err := sc.text()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errUnexpected
	}
	return n, nil
}

func (sc *xmlScanner) bool() (bool, error) {
	s, err := sc.text()
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errUnexpected
	}
	return b, nil
}

// end checks that nothing but blanks, comments and processing
// instructions follow the root element.
func (sc *xmlScanner) end() error {
	for {
		kind, val, _, err := sc.next()
		switch {
		case err != nil:
			return err
		case kind == tokEOF:
			return nil
		case kind == tokText && strings.TrimSpace(val) == "":
		default:
			return errUnexpected
		}
	}
}

// unescape decodes XML's entities and character references in text.
func unescape(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '&') < 0 {
		return string(raw), nil
	}
	var out []byte
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:amp]...)
		semi := bytes.IndexByte(raw[amp:], ';')
		if semi < 0 {
			return "", errUnexpected
		}
		ent := string(raw[amp+1 : amp+semi])
		raw = raw[amp+semi+1:]
		switch ent {
		case "amp":
			out = append(out, '&')
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			r, ok := charRef(ent)
			if !ok {
				return "", errUnexpected
			}
			out = utf8.AppendRune(out, r)
		}
	}
	return string(out), nil
}

// charRef decodes "#NN" or "#xHH".
func charRef(ent string) (rune, bool) {
	if len(ent) < 2 || ent[0] != '#' {
		return 0, false
	}
	base, digits := 10, ent[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || !utf8.ValidRune(rune(n)) {
		return 0, false
	}
	return rune(n), true
}
