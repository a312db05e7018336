/*
 * Unit tests of the SigV4 signer against AWS's published vectors: the
 * Signature Version 4 test suite (credentials AKIDEXAMPLE, region
 * us-east-1, service "service", 20150830T123600Z), the S3 examples of the
 * S3 API reference (examplebucket, 20130524T000000Z), and the S3 reading
 * of the suite's path cases; then the SHA-256 helpers and the errors.
 *
 * Path cases: the suite's "normalize-path" group expects normalised paths
 * ("/example/.." signs as "/", "//example//" as "/example/"); S3 never
 * normalises, so those six expectations (get-relative, get-relative-
 * relative, get-slash, get-slash-dot-slash, get-slash-pointless-dot,
 * get-slashes) are skipped, and the same requests are checked instead
 * against the suite's unnormalised variants (as AWS's common runtime
 * publishes them), which are what S3 computes.  get-space and
 * get-special-character need no normalisation and are kept.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avs_sigv4.h"
#include "tap.h"


#define E3      AVS_SIGV4_EMPTY_SHA256
#define HOST    { "Host", "example.amazonaws.com" }
#define DATE    { "X-Amz-Date", "20150830T123600Z" }
#define CHD     "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
#define SHD     "host;x-amz-date"

#define SUITE_KEY     "AKIDEXAMPLE"
#define SUITE_SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3_KEY        "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

#define TOKEN   "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8" \
    "j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi" \
    "/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp" \
    "75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqB" \
    "Az+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="


/* One vector: the request, and what the suite says comes of it. */
typedef struct {
    const char          *name;
    const char          *method;
    const char          *path;
    const char          *query;
    avs_sigv4_header_t   headers[8];
    const char          *body;          /* hashed into the payload line */
    const char          *creq;          /* NULL: not published here */
    const char          *sts_hash;      /* last line of the string to sign */
    const char          *signed_headers;
    const char          *signature;
} vector_t;


static const vector_t  suite[] = {

    { "get-vanilla", "GET", "/", NULL, { HOST, DATE }, "",
      "GET\n/\n\n" CHD "\n" SHD "\n" E3,
      "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
      SHD,
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },

    { "get-vanilla-query", "GET", "/", "", { HOST, DATE }, "",
      "GET\n/\n\n" CHD "\n" SHD "\n" E3,
      "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
      SHD,
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },

    { "get-vanilla-empty-query-key", "GET", "/", "Param1=value1",
      { HOST, DATE }, "",
      "GET\n/\nParam1=value1\n" CHD "\n" SHD "\n" E3,
      "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
      SHD,
      "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },

    { "get-vanilla-query-order-key", "GET", "/",
      "Param1=value2&Param1=Value1", { HOST, DATE }, "",
      "GET\n/\nParam1=Value1&Param1=value2\n" CHD "\n" SHD "\n" E3,
      "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
      SHD,
      "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1" },

    { "get-vanilla-query-order-key-case", "GET", "/",
      "Param2=value2&Param1=value1", { HOST, DATE }, "",
      "GET\n/\nParam1=value1&Param2=value2\n" CHD "\n" SHD "\n" E3,
      "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
      SHD,
      "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },

    { "get-vanilla-query-order-value", "GET", "/",
      "Param1=value2&Param1=value1", { HOST, DATE }, "",
      "GET\n/\nParam1=value1&Param1=value2\n" CHD "\n" SHD "\n" E3,
      "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
      SHD,
      "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },

    { "get-vanilla-query-order-encoded", "GET", "/",
      "Param-3=Value3&Param=Value2&%E1%88%B4=Value1", { HOST, DATE }, "",
      "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
      CHD "\n" SHD "\n" E3,
      "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71",
      SHD,
      "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac" },

    { "get-vanilla-query-unreserved", "GET", "/",
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      { HOST, DATE }, "",
      "GET\n/\n"
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
      CHD "\n" SHD "\n" E3,
      "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
      SHD,
      "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },

    { "get-vanilla-utf8-query", "GET", "/", "\xe1\x88\xb4=bar",
      { HOST, DATE }, "",
      "GET\n/\n%E1%88%B4=bar\n" CHD "\n" SHD "\n" E3,
      "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
      SHD,
      "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },

    { "get-vanilla-with-session-token", "GET", "/", NULL,
      { HOST, DATE, { "X-Amz-Security-Token",
        "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267" }
      }, "",
      "GET\n/\n\n" CHD "x-amz-security-token:"
      "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n"
      "\nhost;x-amz-date;x-amz-security-token\n" E3,
      "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
      "host;x-amz-date;x-amz-security-token",
      "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8" },

    { "get-header-key-duplicate", "GET", "/", NULL,
      { HOST, { "My-Header1", "value2" }, { "My-Header1", "value2" },
        { "My-Header1", "value1" }, DATE }, "",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,"
      "value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
      E3,
      "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
      "host;my-header1;x-amz-date",
      "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },

    { "get-header-value-multiline", "GET", "/", NULL,
      { HOST, { "My-Header1", "value1\n  value2\n     value3" }, DATE }, "",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 value2 "
      "value3\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
      E3,
      "e99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8",
      "host;my-header1;x-amz-date",
      "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd" },

    { "get-header-value-order", "GET", "/", NULL,
      { HOST, { "My-Header1", "value4" }, { "My-Header1", "value1" },
        { "My-Header1", "value3" }, { "My-Header1", "value2" }, DATE }, "",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,"
      "value3,value2\nx-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" E3,
      "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
      "host;my-header1;x-amz-date",
      "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" },

    { "get-header-value-trim", "GET", "/", NULL,
      { HOST, { "My-Header1", " value1" }, { "My-Header2", " \"a   b   c\"" },
        DATE }, "",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
      "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
      "host;my-header1;my-header2;x-amz-date\n" E3,
      "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
      "host;my-header1;my-header2;x-amz-date",
      "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },

    { "get-unreserved", "GET",
      "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      NULL, { HOST, DATE }, "",
      "GET\n"
      "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
      "\n" CHD "\n" SHD "\n" E3,
      "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
      SHD,
      "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },

    { "get-utf8", "GET", "/\xe1\x88\xb4", NULL, { HOST, DATE }, "",
      "GET\n/%E1%88%B4\n\n" CHD "\n" SHD "\n" E3,
      "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
      SHD,
      "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },

    { "post-header-key-case", "POST", "/", NULL, { HOST, DATE }, "",
      "POST\n/\n\n" CHD "\n" SHD "\n" E3,
      "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
      SHD,
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },

    { "post-header-key-sort", "POST", "/", NULL,
      { HOST, { "My-Header1", "value1" }, DATE }, "",
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
      "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" E3,
      "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
      "host;my-header1;x-amz-date",
      "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },

    { "post-header-value-case", "POST", "/", NULL,
      { HOST, { "My-Header1", "VALUE1" }, DATE }, "",
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\n"
      "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" E3,
      "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
      "host;my-header1;x-amz-date",
      "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },

    { "post-sts-header-after", "POST", "/", NULL, { HOST, DATE }, "",
      "POST\n/\n\n" CHD "\n" SHD "\n" E3,
      "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
      SHD,
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },

    { "post-sts-header-before", "POST", "/", NULL,
      { HOST, DATE, { "X-Amz-Security-Token", TOKEN } }, "",
      "POST\n/\n\n" CHD "x-amz-security-token:" TOKEN "\n\n"
      "host;x-amz-date;x-amz-security-token\n" E3,
      "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
      "host;x-amz-date;x-amz-security-token",
      "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead" },

    { "post-vanilla", "POST", "/", NULL, { HOST, DATE }, "",
      "POST\n/\n\n" CHD "\n" SHD "\n" E3,
      "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
      SHD,
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },

    { "post-vanilla-empty-query-value", "POST", "/", "Param1=value1",
      { HOST, DATE }, "",
      "POST\n/\nParam1=value1\n" CHD "\n" SHD "\n" E3,
      "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
      SHD,
      "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },

    { "post-vanilla-query", "POST", "/", "Param1=value1", { HOST, DATE }, "",
      "POST\n/\nParam1=value1\n" CHD "\n" SHD "\n" E3,
      "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
      SHD,
      "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },

    { "post-x-www-form-urlencoded", "POST", "/", NULL,
      { { "Content-Type", "application/x-www-form-urlencoded" }, HOST, DATE },
      "Param1=value1",
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n" CHD
      "\ncontent-type;host;x-amz-date\n"
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
      "content-type;host;x-amz-date",
      "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },

    { "post-x-www-form-urlencoded-parameters", "POST", "/", NULL,
      { { "Content-Type", "application/x-www-form-urlencoded; charset=utf8" },
        HOST, DATE },
      "Param1=value1",
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; "
      "charset=utf8\n" CHD "\ncontent-type;host;x-amz-date\n"
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
      "content-type;host;x-amz-date",
      "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe" },

    { "normalize-path/get-space", "GET", "/example space/", NULL,
      { HOST, DATE }, "",
      "GET\n/example%20space/\n\n" CHD "\n" SHD "\n" E3,
      "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
      SHD,
      "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },

    { "normalize-path/get-special-character", "GET", "/example/$delete",
      NULL, { HOST, DATE }, "",
      "GET\n/example/%24delete\n\n" CHD "\n" SHD "\n" E3,
      "4053e45b5cef7cec5e17f736b1c12b3faf0388fd4c0bd24326386f132039ce5c",
      SHD,
      "a853c9b21b528b19643d00910d35b83a10c366a10833ceefb45edd6c80e40f27" },

    /* the normalize-path requests, as S3 signs them: paths unchanged */

    { "get-relative (S3: unnormalized)", "GET", "/example/..", NULL,
      { HOST, DATE }, "",
      "GET\n/example/..\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282" },

    { "get-relative-relative (S3: unnormalized)", "GET",
      "/example1/example2/../..", NULL, { HOST, DATE }, "",
      "GET\n/example1/example2/../..\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "dc33e0856fd4baca4d7aa2146c38958283844764f38c74252a333df5e613003b" },

    { "get-slash (S3: unnormalized)", "GET", "//", NULL, { HOST, DATE }, "",
      "GET\n//\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e" },

    { "get-slash-dot-slash (S3: unnormalized)", "GET", "/./", NULL,
      { HOST, DATE }, "",
      "GET\n/./\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "68714168e6557f8f2de0ef956fc24dc2593a4bd2961f8df51898d8a134695145" },

    { "get-slash-pointless-dot (S3: unnormalized)", "GET", "/./example",
      NULL, { HOST, DATE }, "",
      "GET\n/./example\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "beb03f223f7deae4146464f06e29eebbee9c8afbe15c290cf07aa8b119e14cff" },

    { "get-slashes (S3: unnormalized)", "GET", "//example//", NULL,
      { HOST, DATE }, "",
      "GET\n//example//\n\n" CHD "\n" SHD "\n" E3, NULL, SHD,
      "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5" },
};


#define S3_HOST     { "Host", "examplebucket.s3.amazonaws.com" }
#define S3_DATE     { "x-amz-date", "20130524T000000Z" }
#define S3_EMPTY    { "x-amz-content-sha256", E3 }

/* The examples of "Signature Calculations for the Authorization Header". */
static const vector_t  s3_examples[] = {

    { "S3 GET Object with Range", "GET", "/test.txt", NULL,
      { S3_HOST, { "Range", "bytes=0-9" }, S3_EMPTY, S3_DATE }, "",
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\nx-amz-content-sha256:" E3 "\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;range;x-amz-content-sha256;x-amz-date\n" E3,
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
      "host;range;x-amz-content-sha256;x-amz-date",
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41" },

    { "S3 PUT Object", "PUT", "/test$file.text", NULL,
      { { "Date", "Fri, 24 May 2013 00:00:00 GMT" }, S3_HOST,
        { "x-amz-content-sha256",
          "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072" },
        S3_DATE, { "x-amz-storage-class", "REDUCED_REDUNDANCY" } },
      "Welcome to Amazon S3.",
      "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n"
      "\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd" },

    { "S3 GET Bucket Lifecycle", "GET", "/", "lifecycle",
      { S3_HOST, S3_EMPTY, S3_DATE }, "",
      "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:" E3 "\nx-amz-date:20130524T000000Z\n\n"
      "host;x-amz-content-sha256;x-amz-date\n" E3,
      "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
      "host;x-amz-content-sha256;x-amz-date",
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543" },

    { "S3 GET Bucket (List Objects)", "GET", "/", "prefix=J&max-keys=2",
      { S3_HOST, S3_EMPTY, S3_DATE }, "",
      "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:" E3 "\nx-amz-date:20130524T000000Z\n\n"
      "host;x-amz-content-sha256;x-amz-date\n" E3,
      NULL,
      "host;x-amz-content-sha256;x-amz-date",
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7" },
};


static size_t
count_headers(const vector_t *v)
{
    size_t  n;

    for (n = 0; n < 8 && v->headers[n].name != NULL; n++) {
        /* void */
    }

    return n;
}


/* Signs one vector and checks each published text. */
static void
check_vector(const vector_t *v, const char *key, const char *secret,
    const char *date, const char *region, const char *service)
{
    char             payload[AVS_SHA256_HEX_SIZE], auth[AVS_SIGV4_AUTH_SIZE];
    char             want[AVS_SIGV4_AUTH_SIZE];
    const char      *last;
    avs_buf_t        creq, sts;
    avs_err_t        err;
    avs_sigv4_req_t  req;

    memset(&creq, 0, sizeof(avs_buf_t));
    memset(&sts, 0, sizeof(avs_buf_t));
    memset(&req, 0, sizeof(avs_sigv4_req_t));

    avs_sha256_hex(v->body, strlen(v->body), payload);

    req.method = v->method;
    req.path = v->path;
    req.query = v->query;
    req.headers = v->headers;
    req.nheaders = count_headers(v);
    req.payload_sha256 = payload;
    req.access_key = key;
    req.secret_key = secret;
    req.region = region;
    req.service = service;
    req.amz_date = date;

    if (v->creq != NULL) {
        is_int(avs_sigv4_canonical_request(&req, &creq, &err), AVS_OK,
               "%s: canonical request built", v->name);
        is_str((char *) creq.data, v->creq, "%s: canonical request",
               v->name);
    }

    if (v->sts_hash != NULL) {
        is_int(avs_sigv4_string_to_sign(&req, &sts, &err), AVS_OK,
               "%s: string to sign built", v->name);
        last = sts.data ? strrchr((char *) sts.data, '\n') : NULL;
        is_str(last ? last + 1 : NULL, v->sts_hash,
               "%s: string to sign ends with the canonical request's hash",
               v->name);
    }

    snprintf(want, sizeof(want),
             "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
             "SignedHeaders=%s, Signature=%s",
             key, date, region, service, v->signed_headers, v->signature);

    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_OK,
           "%s: signed", v->name);
    is_str(auth, want, "%s: Authorization", v->name);

    avs_buf_free(&creq);
    avs_buf_free(&sts);
}


static void
test_suite(void)
{
    size_t  i;

    for (i = 0; i < sizeof(suite) / sizeof(suite[0]); i++) {
        check_vector(&suite[i], SUITE_KEY, SUITE_SECRET, "20150830T123600Z",
                     "us-east-1", "service");
    }

    for (i = 0; i < sizeof(s3_examples) / sizeof(s3_examples[0]); i++) {
        check_vector(&s3_examples[i], S3_KEY, S3_SECRET, "20130524T000000Z",
                     "us-east-1", "s3");
    }
}


/* The whole string to sign of the suite's first vector, line by line. */
static void
test_string_to_sign(void)
{
    avs_buf_t                  sts;
    avs_err_t                  err;
    avs_sigv4_req_t            req;
    static avs_sigv4_header_t  headers[] = { HOST, DATE };

    memset(&sts, 0, sizeof(avs_buf_t));
    memset(&req, 0, sizeof(avs_sigv4_req_t));

    req.method = "GET";
    req.path = "/";
    req.headers = headers;
    req.nheaders = 2;
    req.payload_sha256 = E3;
    req.access_key = SUITE_KEY;
    req.secret_key = SUITE_SECRET;
    req.region = "us-east-1";
    req.service = "service";
    req.amz_date = "20150830T123600Z";

    is_int(avs_sigv4_string_to_sign(&req, &sts, &err), AVS_OK,
           "get-vanilla: string to sign");
    is_str((char *) sts.data,
           "AWS4-HMAC-SHA256\n20150830T123600Z\n"
           "20150830/us-east-1/service/aws4_request\n"
           "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
           "get-vanilla: string to sign, whole");

    avs_buf_free(&sts);
}


static void
check_encode(const char *in, int keep_slash, const char *want)
{
    avs_buf_t  b;

    memset(&b, 0, sizeof(avs_buf_t));

    ok(avs_sigv4_uri_encode(&b, in, strlen(in), keep_slash) == AVS_OK
       && avs_buf_append(&b, "", 1) == AVS_OK,
       "uri_encode '%s'", in);
    is_str((char *) b.data, want, "uri_encode '%s' (keep_slash %d)", in,
           keep_slash);

    avs_buf_free(&b);
}


static void
test_uri_encode(void)
{
    check_encode("own_ship/2026-11-20/0a1b/node-1.avro", 1,
                 "own_ship/2026-11-20/0a1b/node-1.avro");
    check_encode("a/b", 0, "a%2Fb");
    check_encode("a b+c=d&e", 1, "a%20b%2Bc%3Dd%26e");
    check_encode("user@example.com~", 1, "user%40example.com~");
    check_encode("100%", 1, "100%25");
    check_encode("\xd0\xba\xd0\xbb", 1, "%D0%BA%D0%BB");
    check_encode("", 1, "");
}


static void
test_dates(void)
{
    char  d[AVS_SIGV4_DATE_SIZE];

    avs_sigv4_amz_date(1440938160, d);
    is_str(d, "20150830T123600Z", "amz date of the suite");

    avs_sigv4_amz_date(1369353600, d);
    is_str(d, "20130524T000000Z", "amz date of the S3 examples");

    avs_sigv4_amz_date(0, d);
    is_str(d, "19700101T000000Z", "amz date of the epoch");
}


static void
test_sha256(void)
{
    int       fd;
    char      tmpl[] = "/tmp/avs-sigv4-XXXXXX", one[AVS_SHA256_HEX_SIZE];
    char      streamed[AVS_SHA256_HEX_SIZE];
    size_t    i, n;
    uint64_t  size;
    avs_err_t err;
    uint8_t  *data;

    avs_sha256_hex("", 0, one);
    is_str(one, E3, "sha256 of nothing");

    avs_sha256_hex("Welcome to Amazon S3.", 21, one);
    is_str(one,
           "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
           "sha256 of the S3 PUT example's body");

    /* a file across several read chunks, odd size */
    n = 3 * 256 * 1024 + 12345;
    data = malloc(n);
    ok(data != NULL, "allocated %zu bytes", n);
    if (data == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        data[i] = (uint8_t) (i * 131 + (i >> 9));
    }

    fd = mkstemp(tmpl);
    ok(fd != -1 && write(fd, data, n) == (ssize_t) n, "wrote %s", tmpl);

    avs_sha256_hex(data, n, one);
    size = 0;
    is_int(avs_sha256_file_hex(tmpl, streamed, &size, &err), AVS_OK,
           "file hashed");
    is_str(streamed, one, "streamed hash equals the one-shot hash");
    is_int(size, n, "file size counted");

    ok(lseek(fd, 5, SEEK_SET) == 5, "seek");
    avs_sha256_hex(data + 5, n - 5, one);
    is_int(avs_sha256_fd_hex(fd, streamed, &size, &err), AVS_OK,
           "fd hashed from its offset");
    is_str(streamed, one, "fd hash starts at the offset");
    is_int(size, n - 5, "fd size counted from the offset");

    close(fd);
    unlink(tmpl);
    free(data);

    is_int(avs_sha256_file_hex("/nonexistent/x", streamed, NULL, &err),
           AVS_ESTORE, "missing file: AVS_ESTORE");
    ok(strstr(err.msg, "/nonexistent/x") != NULL,
       "missing file: message names it (%s)", err.msg);
}


/* Requests that cannot be signed; the secret is never in the message. */
static void
test_errors(void)
{
    char                auth[AVS_SIGV4_AUTH_SIZE];
    size_t              i;
    avs_err_t           err;
    avs_sigv4_req_t     req, good;
    avs_sigv4_header_t  many[AVS_SIGV4_MAX_HEADERS + 1];
    static avs_sigv4_header_t  headers[] = { HOST, DATE };
    static avs_sigv4_header_t  nohost[] = { DATE };
    static avs_sigv4_header_t  badname[] = { HOST, { "Bad Name", "x" } };

    memset(&good, 0, sizeof(avs_sigv4_req_t));
    good.method = "GET";
    good.path = "/";
    good.headers = headers;
    good.nheaders = 2;
    good.payload_sha256 = E3;
    good.access_key = SUITE_KEY;
    good.secret_key = SUITE_SECRET;
    good.region = "us-east-1";
    good.service = "service";
    good.amz_date = "20150830T123600Z";

    is_int(avs_sigv4_sign(&good, auth, sizeof(auth), &err), AVS_OK,
           "the base request signs");

    req = good;
    req.headers = nohost;
    req.nheaders = 1;
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "no host header: AVS_EINTERNAL (%s)", err.msg);
    is_str(auth, "", "no host header: no Authorization");

    req = good;
    req.headers = badname;
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "header name with a space: AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.amz_date = "2015-08-30T12:36:00Z";
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "ISO date with dashes: AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.path = "example";
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "relative path: AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.region = "us east";
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "region with a space: AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.access_key = "AKID/EXAMPLE";
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "access key with '/': AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.secret_key = "";
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "empty secret: AVS_EINTERNAL (%s)", err.msg);

    for (i = 0; i < AVS_SIGV4_MAX_HEADERS + 1; i++) {
        many[i].name = (i == 0) ? "host" : "x-amz-meta-n";
        many[i].value = "v";
    }

    req = good;
    req.headers = many;
    req.nheaders = AVS_SIGV4_MAX_HEADERS + 1;
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_EINTERNAL,
           "too many headers: AVS_EINTERNAL (%s)", err.msg);

    req = good;
    req.nheaders = AVS_SIGV4_MAX_HEADERS;
    req.headers = many;
    is_int(avs_sigv4_sign(&req, auth, sizeof(auth), &err), AVS_OK,
           "%d headers, one name repeated, sign", AVS_SIGV4_MAX_HEADERS);

    req = good;
    is_int(avs_sigv4_sign(&req, auth, 100, &err), AVS_EINTERNAL,
           "Authorization too long for its buffer: AVS_EINTERNAL (%s)",
           err.msg);
    is_str(auth, "", "too long: the buffer is left empty");
    ok(strstr(err.msg, SUITE_SECRET) == NULL,
       "the secret is not in the message");

    /* '+' in a query is a plus, '%2B' the same byte; a bare '%' stays */
    {
        avs_buf_t  creq;

        memset(&creq, 0, sizeof(avs_buf_t));
        req = good;
        req.query = "b=2&a=x+y&a=%2B&c=&&d&e=100%";
        is_int(avs_sigv4_canonical_request(&req, &creq, &err), AVS_OK,
               "query with '+', empty parts and a bare '%%'");
        ok(creq.data != NULL
           && strstr((char *) creq.data,
                     "\na=%2B&a=x%2By&b=2&c=&d=&e=100%25\n") != NULL,
           "query canonicalised as S3 does");
        avs_buf_free(&creq);
    }
}


int
main(void)
{
    test_suite();
    test_string_to_sign();
    test_uri_encode();
    test_dates();
    test_sha256();
    test_errors();

    return done_testing();
}
