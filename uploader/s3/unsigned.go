package s3

import (
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/middleware"
)

// unsignedPayload makes every request carry x-amz-content-sha256:
// UNSIGNED-PAYLOAD instead of the SHA-256 of its body. Over https the SDK
// does this anyway for S3; over plain http it would hash every byte once
// more (and the server once more to check), about a sixth of an upload's
// CPU.
//
// It is safe because nothing a Nix client trusts rests on the payload
// signature:
//
//   - The signature still covers the method, bucket, key, query and signed
//     headers, so nobody without the credentials can write to another key
//     or make a request of their own.
//   - Someone able to rewrite a request body in transit (possible only over
//     plain http) could replace a NAR. Clients check every NAR they fetch
//     against the NarHash of its narinfo, and the narinfo's signature, by a
//     key the attacker does not have, covers that NarHash: a replaced NAR is
//     refused. A replaced narinfo fails its signature check the same way.
//   - The same attacker could rewrite what clients download over that plain
//     http link anyway; the narinfo signature is what protects them there
//     too, not the upload's payload hash.
func unsignedPayload(stack *middleware.Stack) error {
	return v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware(stack)
}
