"""S3 errors: an exception per failure, answered as S3's XML error document.

S3 clients dispatch on the ``Code`` element (botocore raises ``ClientError``
with it, and retries or redirects on some), so each failure keeps its AWS code
and HTTP status; ``fields`` adds the extra elements AWS puts in some errors
(``BucketName``, ``Key``, ``StringToSign`` ...) under their AWS names.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Headers, Response
from onestack.object_store.s3.xmlutil import render

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, ("The query parameters that authenticate "
                                               "the request are malformed.")),
    "BadDigest": (400, "The Content-MD5 you specified did not match what was received."),
    "BucketAlreadyExists": (409, ("The requested bucket name is not available. Select a "
                                 "different name and try again.")),
    "BucketAlreadyOwnedByYou": (409, ("The bucket you tried to create already exists, and "
                                     "you own it.")),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, ("Your proposed upload is smaller than the minimum allowed "
                            "object size.")),
    "IllegalVersioningConfigurationException": (400, ("The versioning configuration "
                                                     "specified in the request is invalid.")),
    "IncompleteBody": (400, ("You did not provide the number of bytes specified by the "
                            "Content-Length HTTP header.")),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, ("The AWS access key ID you provided does not exist in our "
                                "records.")),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidChunkSizeError": (403, ("Only the last chunk is allowed to have a size less than "
                                   "8192 bytes.")),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidPart": (400, ("One or more of the specified parts could not be found. The part "
                         "might not have been uploaded, or the specified entity tag might "
                         "not have matched the part's entity tag.")),
    "InvalidPartOrder": (400, ("The list of parts was not in ascending order. The parts list "
                              "must be specified in order by part number.")),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable."),
    "InvalidRange": (416, "The requested range is not satisfiable."),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "KeyTooLongError": (400, "Your key is too long."),
    "MalformedACLError": (400, ("The XML you provided was not well-formed or did not validate "
                               "against our published schema.")),
    "MalformedTrailerError": (400, ("The request contained trailing data that was not "
                                   "well-formed or did not conform to our published schema.")),
    "MalformedXML": (400, ("The XML you provided was not well-formed or did not validate "
                          "against our published schema.")),
    "MetadataTooLarge": (400, ("Your metadata headers exceed the maximum allowed metadata "
                              "size.")),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request Body is empty."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, ("The specified multipart upload does not exist. The upload ID "
                          "might be invalid, or the multipart upload might have been "
                          "aborted or completed.")),
    "NoSuchVersion": (404, ("The version ID specified in the request does not match an "
                           "existing version.")),
    "NotImplemented": (501, ("A header or query you provided implies functionality that is "
                            "not implemented.")),
    "PreconditionFailed": (412, ("At least one of the preconditions that you specified did "
                                "not hold.")),
    "RequestTimeTooSkewed": (403, ("The difference between the request time and the server's "
                                  "time is too large.")),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SignatureDoesNotMatch": (403, ("The request signature that the server calculated does "
                                   "not match the signature that you provided. Check your "
                                   "AWS secret access key and signing method.")),
    "SlowDown": (503, "Please reduce your request rate."),
    "UnexpectedContent": (400, "This request does not support content."),
    "UserKeyMustBeSpecified": (400, ("The bucket POST request must contain the specified field "
                                    "name. If it is specified, check the order of the fields.")),
    "XAmzContentSHA256Mismatch": (400, ("The provided 'x-amz-content-sha256' header does not "
                                       "match what was computed.")),
}


class S3Error(Exception):
    """An S3 failure; ``fields`` become extra elements of the error document."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None, **fields: object) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.message = message or default_message
        self.status = status or default_status
        self.headers = headers or {}
        self.fields = fields
        super().__init__(f"{code}: {self.message}")

    def response(self, request_id: str, resource: str, *, head: bool = False) -> Response:
        """The error document (no body for a HEAD, as S3 answers them)."""
        root = Element("Error")
        SubElement(root, "Code").text = self.code
        SubElement(root, "Message").text = self.message
        for name, value in self.fields.items():
            if value is not None:
                SubElement(root, name).text = str(value)
        SubElement(root, "Resource").text = resource
        SubElement(root, "RequestId").text = request_id
        body = b"" if head else render(root, namespace=False)
        headers = Headers({"Content-Type": "application/xml", **self.headers})
        headers["Content-Length"] = str(len(body))
        return Response(self.status, headers, body)


def not_implemented(message: str | None = None) -> S3Error:
    return S3Error("NotImplemented", message)


def invalid_argument(name: str, value: object, message: str | None = None) -> S3Error:
    return S3Error("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message)
