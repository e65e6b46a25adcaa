//! Real SIP callers: sipp dials the lab's Asterisk, streams a known tone as
//! the caller's voice (RTP, μ-law), and either waits for Asterisk to hang up
//! or hangs up itself after a set time.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The SDP every party offers or answers: μ-law on sipp's media port.
const PCMU_SDP: &str = "      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000";

/// The end of a call the other side hangs up: its BYE, answered.
const ANSWER_BYE: &str = r#"<recv request="BYE" timeout="80000"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

  ]]></send>"#;

pub struct Caller {
    extension: String,
    tag: String,
    /// The μ-law file streamed as the caller's voice; `None`: says nothing.
    voice: Option<PathBuf>,
    /// The start marker's options, passed in X-Callrec-Options.
    options: String,
    number: String,
    name: String,
    hang_up_after: Option<Duration>,
    /// The UDP port the caller's RTP arrives on.
    media_port: u16,
}

pub struct Call {
    child: Child,
    dir: tempfile::TempDir,
    pub placed_at: Instant,
}

impl Caller {
    /// A caller dialling `extension` of the test scenarios, saying 1 kHz.
    pub fn new(extension: &str, tag: &str) -> Caller {
        Caller {
            extension: extension.into(),
            tag: tag.into(),
            voice: Some(tone_file(1000)),
            options: String::new(),
            number: "5551001".into(),
            name: "Test Caller".into(),
            hang_up_after: None,
            media_port: free_media_port(),
        }
    }

    /// Where what the caller hears arrives (RTP), for a test to listen in.
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    /// The caller's tone: 700, 1000 or 1300 Hz (tests/data/callerN.ulaw).
    pub fn tone(mut self, hz: u32) -> Caller {
        self.voice = Some(tone_file(hz));
        self
    }

    /// The caller says what this μ-law file holds (looped).
    pub fn saying(mut self, file: &std::path::Path) -> Caller {
        self.voice = Some(file.to_path_buf());
        self
    }

    /// The caller sends no audio at all.
    pub fn silent(mut self) -> Caller {
        self.voice = None;
        self
    }

    /// Options for the scenario's start marker (`channels=stereo&...`).
    pub fn options(mut self, options: &str) -> Caller {
        self.options = options.into();
        self
    }

    pub fn from(mut self, number: &str, name: &str) -> Caller {
        self.number = number.into();
        self.name = name.into();
        self
    }

    /// Hang up this long after the call is answered.
    pub fn hang_up_after(mut self, after: Duration) -> Caller {
        self.hang_up_after = Some(after);
        self
    }

    pub fn place(self) -> Call {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("caller.xml");
        std::fs::write(&scenario, self.scenario()).unwrap();
        let log = std::fs::File::create(dir.path().join("sipp.log")).unwrap();
        let child = Command::new("sipp")
            .arg("127.0.0.1:5060")
            .arg("-sf")
            .arg(&scenario)
            .args(["-s", &self.extension, "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-mp", &self.media_port.to_string(), "-aa"])
            .args(["-nostdin", "-timeout", "90s", "-timeout_error"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start sipp");
        Call { child, dir, placed_at: Instant::now() }
    }

    fn scenario(&self) -> String {
        let voice = match &self.voice {
            Some(file) => format!(r#"<nop><action><exec rtp_stream="{},-1,0"/></action></nop>"#, file.display()),
            None => String::new(),
        };
        let from =
            format!("\"{}\" <sip:{}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]", self.name, self.number);
        let end = match self.hang_up_after {
            Some(after) => format!(
                r#"<pause milliseconds="{}"/>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>"#,
                after.as_millis()
            ),
            None => ANSWER_BYE.to_string(),
        };
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callrec test caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      X-Callrec-Tag: {tag}
      X-Callrec-Options: {options}
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  {voice}
  {end}
</scenario>
"#,
            tag = self.tag,
            sdp = PCMU_SDP,
            options = self.options,
        )
    }
}

/// One of the callers' tone files (tests/data/callerN.ulaw: 700, 1000 or 1300 Hz).
pub fn tone_file(hz: u32) -> PathBuf {
    let tone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/caller{hz}.ulaw"));
    assert!(tone.exists(), "no caller tone {}", tone.display());
    tone
}

/// A second SIP party: answers the one call the lab's `agent` endpoint
/// places (on 127.0.0.1:15092) as "Agent Smith" <2001>, says a tone, and
/// answers the PBX's BYE. `agent2` (on 15094) is "Agent Jones" <2002>.
pub struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

pub const AGENT_NUMBER: &str = "2001";
pub const AGENT_NAME: &str = "Agent Smith";
pub const AGENT2_NUMBER: &str = "2002";
pub const AGENT2_NAME: &str = "Agent Jones";

impl Agent {
    pub fn answer(tone_hz: u32) -> Agent {
        let tone = tone_file(tone_hz).display().to_string();
        Self::start(15092, &agent_scenario(&tone, AGENT_NAME, AGENT_NUMBER, Duration::ZERO, AgentEnd::Answered))
    }

    /// The lab's `agent`, which hangs up (its own BYE) this long after
    /// answering: the end of an attended transfer's consultation.
    pub fn hanging_up_after(tone_hz: u32, after: Duration) -> Agent {
        let tone = tone_file(tone_hz).display().to_string();
        Self::start(15092, &agent_scenario(&tone, AGENT_NAME, AGENT_NUMBER, Duration::ZERO, AgentEnd::ByeAfter(after)))
    }

    /// The lab's `agent2`, the party calls are transferred to; it rings for
    /// a second before it answers, as a person would.
    pub fn answer_as_agent2(tone_hz: u32) -> Agent {
        let tone = tone_file(tone_hz).display().to_string();
        let ring = Duration::from_secs(1);
        Self::start(15094, &agent_scenario(&tone, AGENT2_NAME, AGENT2_NUMBER, ring, AgentEnd::Answered))
    }

    /// The lab's `agent`, which blind-transfers the call (SIP REFER) to
    /// `agent2` this long after answering.
    pub fn transferring_after(tone_hz: u32, after: Duration) -> Agent {
        let tone = tone_file(tone_hz).display().to_string();
        Self::start(
            15092,
            &agent_scenario(&tone, AGENT_NAME, AGENT_NUMBER, Duration::ZERO, AgentEnd::ReferAfter(after)),
        )
    }

    /// The lab's `agent`, sending back whatever it hears (sipp's RTP echo),
    /// so that the caller hears itself through the bridge.
    pub fn echoing() -> Agent {
        Self::start(15092, &agent_scenario("", AGENT_NAME, AGENT_NUMBER, Duration::ZERO, AgentEnd::Answered))
    }

    fn start(port: u16, scenario_text: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("agent.xml");
        std::fs::write(&scenario, scenario_text).unwrap();
        let log = std::fs::File::create(dir.path().join("sipp.log")).unwrap();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-p", &port.to_string(), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-aa"])
            .args(if scenario_text.contains("rtp_stream") { &[][..] } else { &["-rtp_echo"][..] })
            .args(["-mp", &free_media_port().to_string()])
            .args(["-nostdin", "-timeout", "90s", "-timeout_error"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start sipp");
        Agent { child, dir }
    }

    /// Waits for the agent's call to end the way its scenario says.
    pub async fn finish(mut self) {
        wait_for_sipp(&mut self.child, self.dir.path()).await;
    }
}

/// The first agent's second line, for an attended transfer by its phone: it
/// calls the second agent through the PBX (`agent2-consult`, the
/// consultation), then `after` the answer sends a REFER on that call whose
/// Refer-To replaces `replaces` — the agent's first call, the one with the
/// caller (call-id;to-tag;from-tag). Asterisk puts the caller through to the
/// second agent and hangs up the agent's first call; the agent's phone hangs
/// up the consultation a second after the REFER is accepted. The NOTIFYs on
/// the way are answered by sipp itself (-aa).
pub struct Consult {
    child: Child,
    dir: tempfile::TempDir,
}

impl Consult {
    pub fn transfer_after(replaces: &str, after: Duration) -> Consult {
        let escaped = replaces.replace('%', "%25").replace(';', "%3B").replace('=', "%3D").replace('@', "%40");
        let from =
            format!("\"{AGENT_NAME}\" <sip:{AGENT_NUMBER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]");
        let scenario = format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callrec test consultation">
  <send retrans="500"><![CDATA[
      INVITE sip:agent2-consult@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: <sip:agent2-consult@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{AGENT_NUMBER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true">
    <action><ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="their_to"/></action>
  </recv>
  <send><![CDATA[
      ACK [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: [$their_to]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:{AGENT_NUMBER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{after}"/>
  <send retrans="500"><![CDATA[
      REFER [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: [$their_to]
      Call-ID: [call_id]
      CSeq: 2 REFER
      Contact: <sip:{AGENT_NUMBER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Refer-To: <sip:agent2@127.0.0.1:5060?Replaces={escaped}>
      Referred-By: <sip:{AGENT_NUMBER}@127.0.0.1>
      Content-Length: 0

  ]]></send>
  <recv response="202"/>
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from}
      To: [$their_to]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:{AGENT_NUMBER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"#,
            sdp = PCMU_SDP,
            after = after.as_millis(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consult.xml");
        std::fs::write(&path, scenario).unwrap();
        let log = std::fs::File::create(dir.path().join("sipp.log")).unwrap();
        let child = Command::new("sipp")
            .arg("127.0.0.1:5060")
            .arg("-sf")
            .arg(&path)
            .args(["-p", "15096", "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-aa"])
            .args(["-mp", &free_media_port().to_string()])
            .args(["-nostdin", "-timeout", "90s", "-timeout_error"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start sipp");
        Consult { child, dir }
    }

    /// Waits for the consultation to end.
    pub async fn finish(mut self) {
        wait_for_sipp(&mut self.child, self.dir.path()).await;
    }
}

/// How an agent's call ends.
enum AgentEnd {
    /// The PBX hangs up; the agent answers its BYE.
    Answered,
    /// The agent blind-transfers the call to `agent2` (SIP REFER), then
    /// hangs up, as a phone does.
    ReferAfter(Duration),
    /// The agent hangs up.
    ByeAfter(Duration),
}

/// The agent's own BYE, and the PBX's answer to it.
const AGENT_BYE: &str = r#"<send retrans="500"><![CDATA[
      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to];tag=[pid]SIPpTag01[call_number]
      To: [$their_from]
      Call-ID: [call_id]
      CSeq: 102 BYE
      Contact: <sip:agent@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>"#;

/// An agent answering as `name` <`number`> after ringing for `ring`, saying
/// `tone` (none: it echoes), its call ending as `end` says.
fn agent_scenario(tone: &str, name: &str, number: &str, ring: Duration, end: AgentEnd) -> String {
    // An agent that sends requests itself keeps what it needs of the dialog.
    let dialog = r#"<action><ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="their_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="our_to"/></action>"#;
    let (capture, end) = match end {
        AgentEnd::Answered => ("", ANSWER_BYE.to_string()),
        AgentEnd::ByeAfter(after) => (dialog, format!(r#"<pause milliseconds="{}"/>{AGENT_BYE}"#, after.as_millis())),
        // REFER inside the dialog, answered 202; the transfer's NOTIFYs are
        // answered by sipp itself (-aa).
        AgentEnd::ReferAfter(after) => (
            dialog,
            format!(
                r#"<pause milliseconds="{}"/>
  <send retrans="500"><![CDATA[
      REFER [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to];tag=[pid]SIPpTag01[call_number]
      To: [$their_from]
      Call-ID: [call_id]
      CSeq: 101 REFER
      Contact: <sip:agent@[local_ip]:[local_port]>
      Max-Forwards: 70
      Refer-To: <sip:agent2@127.0.0.1:5060>
      Referred-By: <sip:{number}@127.0.0.1>
      Content-Length: 0

  ]]></send>
  <recv response="202"/>
  <pause milliseconds="1500"/>
  {AGENT_BYE}"#,
                after.as_millis()
            ),
        ),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callrec test agent">
  <recv request="INVITE" crlf="true">{capture}</recv>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{ring}"/>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      P-Asserted-Identity: "{name}" <sip:{number}@127.0.0.1>
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}

  ]]></send>
  <recv request="ACK" crlf="true"/>
  {voice}
  {end}
</scenario>
"#,
        ring = ring.as_millis(),
        sdp = PCMU_SDP,
        voice = match tone {
            "" => String::new(),
            tone => format!(r#"<nop><action><exec rtp_stream="{tone},-1,0"/></action></nop>"#),
        }
    )
}

async fn wait_for_sipp(child: &mut Child, dir: &std::path::Path) {
    let status =
        tokio::time::timeout(Duration::from_secs(100), child.wait()).await.expect("the sipp call ends").unwrap();
    let log = std::fs::read_to_string(dir.join("sipp.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert!(status.success(), "sipp failed ({status}):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
}

impl Call {
    /// Waits for the call to end; it must have ended the way the scenario says.
    pub async fn finish(mut self) {
        wait_for_sipp(&mut self.child, self.dir.path()).await;
    }
}

/// An even UDP port with its neighbour free, for sipp's RTP.
fn free_media_port() -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port() & !1;
        drop(socket);
        if port > 1024
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
}
