package s3

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A page as S3 writes it, with what S3 may add: a namespace, an Owner,
// entities and character references, CDATA, a comment, self-closing and
// unknown elements.
func TestParseListV2(t *testing.T) {
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bench</Name><Prefix>p%2F</Prefix><KeyCount>4</KeyCount><MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>
  <NextContinuationToken>tok&amp;en</NextContinuationToken>
  <!-- a comment -->
  <Contents>
    <Key>p%2Fa%26b</Key><LastModified>2026-11-21T09:31:11.123Z</LastModified>
    <ETag>&#34;0123abcd&#34;</ETag><ChecksumAlgorithm>CRC32C</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>
    <Size>4096</Size><Owner><ID>o1</ID><DisplayName>x</DisplayName></Owner><StorageClass>STANDARD</StorageClass>
    <RestoreStatus/><Future a="1>2"><Nested>n</Nested></Future>
  </Contents>
  <Contents><Key><![CDATA[p%2F<raw>]]></Key><ETag>&quot;e2&quot;</ETag><Size>0</Size><LastModified>2026-01-02T03:04:05Z</LastModified></Contents>
  <CommonPrefixes><Prefix>p%2Fd%2F</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>p%2F&#x65E5;%2F</Prefix></CommonPrefixes>
</ListBucketResult>
`
	out, err := parseListV2([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Name) != "bench" || aws.ToString(out.Prefix) != "p%2F" || aws.ToInt32(out.KeyCount) != 4 ||
		aws.ToInt32(out.MaxKeys) != 1000 || aws.ToString(out.Delimiter) != "/" || !aws.ToBool(out.IsTruncated) ||
		out.EncodingType != "url" || aws.ToString(out.NextContinuationToken) != "tok&en" {
		t.Errorf("page fields: %+v", out)
	}
	if len(out.Contents) != 2 {
		t.Fatalf("%d objects, want 2", len(out.Contents))
	}
	o := out.Contents[0]
	mt := time.Date(2026, 11, 21, 9, 31, 11, 123e6, time.UTC)
	if aws.ToString(o.Key) != "p%2Fa%26b" || aws.ToString(o.ETag) != `"0123abcd"` || aws.ToInt64(o.Size) != 4096 ||
		!aws.ToTime(o.LastModified).Equal(mt) || o.StorageClass != "STANDARD" ||
		!slices.Equal(o.ChecksumAlgorithm, []types.ChecksumAlgorithm{"CRC32C"}) || o.ChecksumType != "FULL_OBJECT" {
		t.Errorf("first object: %+v", o)
	}
	if o := out.Contents[1]; aws.ToString(o.Key) != "p%2F<raw>" || aws.ToString(o.ETag) != `"e2"` || o.Size == nil || *o.Size != 0 {
		t.Errorf("second object: %+v", o)
	}
	var prefixes []string
	for _, p := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if !slices.Equal(prefixes, []string{"p%2Fd%2F", "p%2F日%2F"}) {
		t.Errorf("common prefixes %q", prefixes)
	}
}

// Documents the scanner does not read are errUnexpected, which hands them
// to the SDK's deserializer.
func TestParseListV2Refuses(t *testing.T) {
	for name, doc := range map[string]string{
		"doctype":      `<!DOCTYPE x [<!ENTITY e "v">]><ListBucketResult><Name>&e;</Name></ListBucketResult>`,
		"other root":   `<Error><Code>NoSuchBucket</Code></Error>`,
		"entity":       `<ListBucketResult><Name>&nbsp;</Name></ListBucketResult>`,
		"bad size":     `<ListBucketResult><Contents><Size>12a</Size></Contents></ListBucketResult>`,
		"bad time":     `<ListBucketResult><Contents><LastModified>yesterday</LastModified></Contents></ListBucketResult>`,
		"unclosed":     `<ListBucketResult><Contents><Key>k</Key>`,
		"mismatched":   `<ListBucketResult><Name>b</Prefix></ListBucketResult>`,
		"trailing":     `<ListBucketResult></ListBucketResult><More/>`,
		"element text": `<ListBucketResult><Name><b>x</b></Name></ListBucketResult>`,
		"bad char ref": `<ListBucketResult><Name>&#xD800;</Name></ListBucketResult>`,
		"prefixed":     `<ListBucketResult><s3:Contents><s3:Key>k</s3:Key></s3:Contents></ListBucketResult>`,
		"count":        `<ListBucketResult><KeyCount>2</KeyCount><Contents><Key>k</Key></Contents></ListBucketResult>`,
	} {
		if _, err := parseListV2([]byte(doc)); !errors.Is(err, errUnexpected) {
			t.Errorf("%s: %v, want errUnexpected", name, err)
		}
	}
}
