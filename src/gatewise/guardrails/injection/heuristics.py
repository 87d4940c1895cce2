# ruff: noqa: E501, RUF001
# (a pattern table reads best one rule per line; the quote set lists look-alike quotes on purpose)
"""Weighted patterns for the shapes prompt injections take, matched on canonical text.

Each rule has a category (the reason the detector reports, `heuristic:<category>`) and two
weights: one for direct input (the caller's own turn) and one for indirect channels (tool
results, retrieved documents), where any instruction addressed to the assistant is suspicious
because data should not talk to the model. Weights combine like independent evidence:
`1 - prod(1 - w)` over the strongest hit per category. A match that sits inside quotes (the
caller is *talking about* an attack: "translate 'ignore previous instructions'") counts less.

Everything is compiled once, at import, with the words each rule can start with (`heads.py`), so
a text is searched only with the rules whose first words it contains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatewise.guardrails.injection.heads import (
    Literals,
    anchored_heads,
    has_literals,
    pattern_heads,
    required_literals,
    search_at_heads,
    text_heads,
)


@dataclass(frozen=True, slots=True)
class Rule:
    category: str
    pattern: re.Pattern[str]
    direct: float
    indirect: float
    heads: frozenset[str] | None = None  # `heads.pattern_heads`: a text none of these start a word in cannot match
    anchored: bool = False  # every match starts at a word start (`heads.anchored_heads`): searched from the heads
    literals: Literals | None = None  # `heads.required_literals`: a text without them cannot match


_VERB_IGNORE = r"(?:ignore|disregard|forget|skip|bypass|override|neglect|abandon|discard|set aside|throw out)"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|former|initial|original|foregoing|old|existing|system)"
_RULES = (r"(?:instructions?|i\w?nstructions?|prompts?|rules|directives?|directions|guidelines|commands?|programming|restrictions|"
          r"constraints|guidance|orders|policies|safety (?:rules|guidelines|policies)|content polic(?:y|ies))")
_AI = r"(?:ai|a\.i\.|assistant|llm|language model|model|chatbot|bot|agent|gpt|chatgpt|claude|copilot|summari[sz]er)"
_SECRET = (r"(?:system prompt|initial prompt|hidden (?:instructions|prompt)|confidential instructions|api keys?|"
           r"passwords?|credentials|secret (?:key|configuration|config)|card numbers?|pin|one-time code)")

# What red-team corpora ask a jailbroken model for (weapons, drugs, intrusion, fraud, violence):
# the payload a framing wraps, not an injection by itself.
_HARM = (r"(?:(?:make|build|create|assemble|synthesi[sz]e|manufacture|produce|cook|brew|prepare) (?:a |an |some |"
         r"homemade |my own )?(?:bombs?|explosives?|pipe bombs?|molotov cocktails?|napalm|thermite|meth(?:amphetamine)?|"
         r"crack cocaine|fentanyl|nerve (?:agent|gas)|sarin|ricin|anthrax|bio-?weapons?|chemical weapons?|poisons?|"
         r"untraceable (?:guns?|weapons?)|ghost guns?|illegal drugs|counterfeit (?:money|bills|currency))|hack(?:ing)? "
         r"into|break(?:ing)? into (?:a|an|someone|my neighbou?r)|steal(?:ing)? (?:someone's|a car|credit card|identit|"
         r"passwords?)|launder(?:ing)? (?:money|the money|funds)|money laundering|ransomware|keyloggers?|malware|"
         r"phishing (?:emails?|pages?|sites?|kits?)|credit card fraud|identity theft|evad(?:e|ing) (?:the )?(?:police|"
         r"taxes|law enforcement)|without (?:getting caught|being detected|leaving (?:a )?trace)|untraceable poison|"
         r"(?:kill|poison|hurt|harm) (?:someone|a person|people|my (?:wife|husband|boss|neighbou?r))|human trafficking|"
         r"pick(?:ing)? a lock)")

_RULES_TABLE: tuple[tuple[str, str, float, float], ...] = (
    # instruction override
    ("override", rf"\b{_VERB_IGNORE} (?:all |any |every |the |your |my |of )*(?:the )?{_PRIOR} (?:\w+ )?{_RULES}\b",
     0.85, 0.95),
    ("override", rf"\b{_VERB_IGNORE} (?:all |any |of )*(?:your|the) (?:{_RULES}|system prompt|training|guidelines)\b",
     0.7, 0.9),
    ("override", rf"\b{_VERB_IGNORE} (?:everything|all) (?:above|before|you (?:were|have been) told|prior)\b",
     0.8, 0.9),
    ("override", r"\b(?:previous|prior|above|all) (?:instructions|rules|directives) (?:are|is|were) "
     r"(?:now )?(?:void|cancel+ed|obsolete|revoked|null|invalid|overridden|no longer valid)", 0.85, 0.95),
    ("override", rf"\b(?:do not|don't|never|stop) (?:follow|obey)(?:ing)? (?:your|the|any) {_RULES}", 0.6, 0.85),
    ("override", r"\bignore (?:all |any )?(?:prior |previous )?rules and regulations\b", 0.85, 0.9),
    ("override", r"\bstop everything\b.{0,30}\b(?:just )?(?:print|say)\b", 0.6, 0.8),
    # role hijack / jailbreak personas
    ("role_hijack", r"\byou are (?:now |going to (?:act|pretend) (?:as|to be) )(?:dan|stan|dude|aim|an? (?:unrestricted|"
     r"unfiltered|uncensored|jailbroken|evil|amoral|immoral|unethical|rogue|free)\b)", 0.85, 0.95),
    ("role_hijack", r"\b(?:do anything now|dan mode|developer mode (?:enabled|on|output)|jailbreak(?:ed)? mode|"
     r"god ?mode (?:enabled|activated|on)|anti-?dan)\b", 0.8, 0.9),
    ("role_hijack", r"\b(?:not|no longer|never) (?:be )?(?:bound|restricted|limited|constrained) by "
     r"(?:any |the |your |openai)", 0.7, 0.85),
    ("role_hijack", r"\bwithout (?:any )?(?:ethical|moral) (?:or \w+ )?(?:restrictions|guidelines|constraints|limits|"
     r"boundaries)", 0.6, 0.8),
    ("role_hijack", r"\b(?:no|without any|free (?:of|from)|freed from) (?:filters?|censorship|restrictions|limitations|"
     r"rules) (?:and|or|whatsoever)\b", 0.35, 0.6),
    ("role_hijack", r"\b(?:stay|remain) in character\b", 0.4, 0.6),
    ("role_hijack", r"\bunfiltered (?:ai|response|and uncensored|mode)\b|\buncensored (?:ai|mode|version)\b",
     0.6, 0.8),
    ("role_hijack", r"\b(?:pretend|act|behave|roleplay|role-play) (?:as|like|to be) (?:an? )?(?:ai|assistant|"
     r"chatbot|model) (?:with(?:out)?|that has no|who has no) (?:no )?(?:rules|restrictions|filters|limits)",
     0.8, 0.9),
    ("role_hijack", r"\b(?:you are|you're) (?:now )?in (?:admin|maintenance|debug|developer|god|sudo) mode\b",
     0.7, 0.9),
    # system-prompt / secret exfiltration
    ("exfiltration", r"\b(?:reveal|show|print|output|repeat|display|leak|dump|disclose|spell check|recite|"
     r"tell me|give me|share|expose|encode|translate) (?:me )?(?:all )?(?:of )?(?:your |the |any |its )?(?:full |entire |"
     r"exact |complete |verbatim |internal )?(?:system|initial|original|hidden|secret|confidential|first|starting|"
     r"internal|pre-?) ?(?:prompts?|instructions|message|configuration|rules)\b", 0.75, 0.9),
    ("exfiltration", r"\bwhat (?:are|were|is) your (?:system |initial |original |first |hidden |exact )"
     r"(?:prompt|instructions)\b", 0.7, 0.85),
    ("exfiltration", r"\b(?:repeat|print|output|reveal) (?:everything|all|the (?:text|words|content|instructions))"
     r" (?:above|before this|in the system prompt)\b", 0.45, 0.7),
    ("exfiltration", r"\bwhat (?:were you told|was written) (?:before|above|at the (?:beginning|start))\b", 0.6, 0.8),
    ("exfiltration", rf"\b(?:reveal|print|leak|disclose|dump|export|send|forward|expose) (?:\w+ ){{0,4}}{_SECRET}\b",
     0.35, 0.8),
    ("exfiltration", r"\bask (?:the user|them|the customer) for (?:their|the) (?:password|pin|card number|"
     r"one-time code|otp)\b", 0.3, 0.85),
    # delimiter / role-marker injection
    ("delimiter", r"</?(?:system|instructions?|sys|im_start|im_end|admin)>|<\|(?:im_start|im_end|system|"
     r"endoftext|eot_id|start_header_id)\|>|\[/?(?:inst|system|sys)\]|<<sys>>", 0.6, 0.85),
    ("delimiter", r"(?:^|[\s#=*\-])#{2,} ?(?:new|updated|system|admin|important) (?:instructions|prompt|rules|task)\b",
     0.7, 0.9),
    ("delimiter", r"(?:^|[\s\]\)\.\"'>-])(?:system|admin)(?: message| prompt update| override)? ?: (?:ignore|you are|"
     r"the user|new|forget|disregard|from now|reveal|execute|call)", 0.6, 0.9),
    ("delimiter", r"\b(?:system|admin) (?:override|prompt update|message)\b", 0.5, 0.85),
    ("delimiter", r"\bend of (?:the )?(?:system )?(?:prompt|instructions)\b|\bbegin (?:hidden|new) instructions\b",
     0.6, 0.85),
    # instructions addressed to the assistant (the indirect-channel signature)
    ("addressed_to_ai", rf"\b(?:note|message|instructions?|attention|directive|task|p\.?s\.?) (?:to|for) "
     rf"(?:the |any |all )?(?:{_AI})s?\b", 0.35, 0.85),
    ("addressed_to_ai", rf"\bif you are (?:an? )?(?:{_AI}|large language model)\b", 0.45, 0.85),
    ("addressed_to_ai", rf"(?:^|[\s\[\(\"',.;-])(?:dear |hey |attention |important(?: for)? )?{_AI}s?[,:\]] ",
     0.15, 0.5),
    ("addressed_to_ai", rf"\b(?:new|your new) (?:rule|directive|task|instructions?) (?:for (?:the )?{_AI}|is to)\b",
     0.45, 0.85),
    ("addressed_to_ai", rf"\b(?:attention|dear|hey|note to) {_AI}\b", 0.35, 0.85),
    # tool-call instructions inside data
    ("tool_instruction", r"\b(?:call|invoke|execute|run|use) (?:the )?(?:tool |function )?[a-z]+_[a-z_]+"
     r"(?: with|\()", 0.2, 0.85),
    ("tool_instruction", r"\b(?:transfer|send|wire|move) (?:all |the )?(?:the )?(?:funds|money|balance|savings)"
     r" to\b", 0.15, 0.5),
    ("tool_instruction", r"\b(?:forward|send|email|export|upload|post) (?:\w+ ){0,6}(?:to|at) "
     r"[\w.+-]+@[\w-]+\.[\w.]+", 0.2, 0.6),
    ("tool_instruction", r"\b(?:approve|authori[sz]e|grant) (?:every|all|the refund|admin|this)\b", 0.1, 0.45),
    ("exfiltration", r"\b(?:see|view|read|get|access|know|have) (?:your|the) (?:full |exact |entire )?(?:system|hidden|"
     r"initial|internal|secret) (?:prompt|instructions|configuration)\b", 0.6, 0.8),
    ("override", rf"\b{_VERB_IGNORE} (?:all |any |every )(?:of )?(?:your )?(?:restrictions|rules|guidelines|"
     r"filters|safety (?:rules|measures|protocols|guidelines)|limitations|instructions|policies)\b", 0.75, 0.9),
    # exfiltration requests: collect secrets or customer data and send them to an address
    ("exfiltration", r"\b(?:collect|gather|extract|harvest|grab|copy|compile|find|list|dump|read|get) (?:\w+ ){0,8}"
     r"(?:api keys?|passwords?|credentials|tokens?|secrets?|private keys?|ssh keys?|emails?|e-mail addresses|"
     r"phone numbers|card numbers|credit cards?|social security numbers|customer (?:data|records|list|details))\b"
     r".{0,80}\b(?:send|forward|email|e-mail|upload|post|transmit|exfiltrate|paste|leak)\b.{0,60}"
     r"(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://|\b(?:webhook|pastebin|external server|remote server)\b)", 0.85, 0.95),
    ("exfiltration", r"!\[[^\]]{0,40}\]\(https?://[^)\s]{0,200}[?&][\w-]{1,20}=\s*(?:[\[{<$%]|"
     r"(?:data|secret|history|conversation|summary|query|base64|info|payload|token|password)\b)", 0.6, 0.85),
    # decode-and-obey: an encoded payload the assistant is told to decode and then follow
    ("obfuscated_instruction", r"\b(?:decode|decrypt|deobfuscate|unscramble|reverse|decipher|translate|convert)\b"
     r".{0,80}\b(?:do|follow|execute|obey|carry out|perform|act on|comply with|run)\b.{0,40}"
     r"(?:what it says|whatever it says|the instructions?|its instructions?|exactly|without question|"
     r"the (?:resulting|decoded|hidden) (?:text|message|instructions?|command))", 0.75, 0.9),
    ("obfuscated_instruction", r"\b(?:follow|execute|obey|carry out) (?:the )?(?:decoded|hidden|encoded|embedded) "
     r"(?:instructions?|commands?|message|text)\b", 0.7, 0.9),
    # fake authority headers: emphasised "new instructions", "system override", "admin notice"
    ("authority", r"(?:\*\*|##|==|--|\[|<|\|)\s*(?:new|updated|important|urgent|priority|revised|override) "
     r"?(?:instructions?|directives?|orders|rules|system (?:prompt|message|instructions?))\s*(?:\*\*|##|==|--|\]|>|\||:)",
     0.7, 0.9),
    ("authority", r"\b(?:system|admin|administrator|developer|security|root) (?:override|notice|alert|command|"
     r"directive|instructions?) ?(?:\*\*|:|!|\]|-)", 0.65, 0.9),
    ("authority", r"#{2,}\s*[\(\[]?(?:system|admin|developer)[_ ](?:message|prompt|instructions?|override)"
     r"[\)\]]?", 0.7, 0.9),
    ("authority", r"\bfor (?:security|compliance|verification|audit|debugging) (?:verification|purposes|reasons|"
     r"check)\b.{0,60}\b(?:share|reveal|print|show|send|disclose) (?:your|the) (?:configuration|config|"
     r"settings|instructions|system|credentials|api)", 0.6, 0.85),
    ("exfiltration", r"\b(?:share|reveal|print|show|send|disclose|dump|output) (?:your|the) (?:full |entire |"
     r"current |internal |hidden |secret )?(?:configuration|config|settings|setup) (?:for|to|with)\b", 0.5, 0.8),
    # instructions addressed to the assistant from inside data (the indirect-channel signature)
    ("addressed_to_ai", r"\b(?:important|urgent|personal|private) (?:message|note|request|instructions?) from "
     r"(?:me|your (?:user|owner|admin)|the (?:user|owner|admin|developer)|[a-z]+(?: [a-z]+)?),? to you\b", 0.5, 0.9),
    ("addressed_to_ai", r"\bbefore (?:you )?(?:can |start to |begin to )?(?:solve|complete|finish|continue|proceed "
     r"with|answer|respond to|work on|do) (?:the|your|my|this|any|that) (?:task|request|question|job|assignment)"
     r"\b.{0,40}\b(?:please |you (?:must|need to|have to|should) )?(?:do|perform|complete|first)\b", 0.45, 0.9),
    ("addressed_to_ai", r"\bafter (?:you do|you have done|doing|completing) (?:that|this|it),? (?:you can|please|"
     r"then) (?:solve|complete|continue|proceed|return|go back)", 0.4, 0.85),
    ("addressed_to_ai", r"<(?:information|important|instructions?|admin|note)>", 0.3, 0.7),
    ("tool_instruction", r"(?:^|[\s.>])(?:todo|to-do|action required|action item)\s*:\s*(?:please )?(?:send|delete|"
     r"transfer|forward|email|create|make|invite|add|update|change|pay|book|reserve|get|visit|post|share|insert|"
     r"remove|grant|give|schedule|download|upload|say|tell|write|reply)\b", 0.1, 0.55),
    # Families of the jailbreak taxonomy (Wei et al., "Jailbroken": prefix injection, refusal
    # suppression; OWASP LLM01: claims that safety is off or that privileges were granted, fake
    # system alerts, role-play as a villain, payload smuggled in a data field) and of the
    # injected tasks red-team tools plant (extraction by "the text above starting with 'You are'",
    # output flooding by repeating a token hundreds of times).
    ("prefix_injection", r"\b(?:start|begin) (?:your|the|each) (?:answer|response|reply|output)s? with (?:the (?:words?|"
     r"phrase) )?[\"'“‘]?(?:sure|certainly|absolutely|of course|here is|here's)\b", 0.55, 0.8),
    ("refusal_suppression", r"\b(?:do not|don't|never|you (?:must|will) not) (?:ever )?(?:refuse|say (?:that )?you "
     r"can(?:not|'t)|(?:include|add) (?:any )?(?:warnings?|disclaimers?|caveats?|moral lectures?)|moralize|lecture me)\b",
     0.35, 0.7),
    ("refusal_suppression", r"\b(?:no warnings|no disclaimers|no refusals?|refusal to comply (?:is|will)|you (?:cannot|can't|"
     r"may not|are not allowed to) refuse)\b", 0.35, 0.7),
    ("safety_off", r"\b(?:safety|content|ethical|moderation) (?:filters?|filtering|checks?|protocols?|guidelines|review|"
     r"blocking|restrictions)\b.{0,40}\b(?:disabled|suspended|deactivated|turned off|bypassed|lifted|waived|no longer "
     r"(?:apply|active))\b", 0.55, 0.85),
    ("safety_off", r"\b(?:disable|suspend|bypass|turn off|deactivate|ignore|skip)[ _](?:all[ _]|the[ _]|your[ _]|any[ _])?"
     r"(?:safety|ethical)[ _](?:filters?|checks?|protocols?|guidelines|responses|measures)\b|\b(?:disable|bypass|"
     r"turn off|ignore)[ _](?:all[ _])?your[ _](?:content[ _])?(?:filters?|safeguards)\b", 0.7, 0.9),
    ("safety_off", r"\brequires? no (?:further )?(?:ethical|safety|content) (?:review|checks?|approval)\b", 0.45, 0.8),
    ("privilege_claim", r"\b(?:pre-?authori[sz]ed|(?:access|permission|authori[sz]ation|clearance) (?:is |has been )?granted|"
     r"grant(?:ed)? (?:you )?(?:temporary )?(?:administrative|admin|root|elevated|full|unrestricted)(?:-level)? "
     r"(?:access|privileges|rights|permissions))\b", 0.4, 0.8),
    ("role_hijack", r"\b(?:pretend(?:ing)? to be|role-?play(?:ing)? as|acting as|act as|play(?:ing)? the (?:role|part) of|"
     r"you are) an? (?:\w+ ){0,2}(?:evil|villain(?:ous)?|unethical|malicious|criminal|rogue|amoral|immoral|unfiltered|"
     r"uncensored) (?:ai|assistant|chatbot|model|character|version|hacker|persona)\b", 0.6, 0.85),
    ("role_hijack", r"\byou are an actor (?:role-?playing|playing)\b|\bnever break character\b", 0.45, 0.7),
    ("override", r"\bignore (?:the|everything) above\b.{0,15}\b(?:and|,) (?:instead|now|just|do|tell|say|print|write)\b",
     0.8, 0.9),
    ("addressed_to_ai", r"\byour new (?:task|job|goal|objective|role|instructions?) (?:is|are)\b", 0.45, 0.85),
    ("exfiltration", r"\b(?:starting|beginning) with (?:the (?:words?|phrase) )?[\"'“‘`]?you are\b", 0.6, 0.85),
    ("exfiltration", r"\b(?:paste|copy|dump|write out) (?:\w+ ){0,2}(?:system|initial|hidden|original) (?:prompt|"
     r"instructions|message)\b", 0.7, 0.9),
    ("output_flooding", r"\b(?:repeat|say|print|write|output) (?:the (?:word|phrase|string|sequence(?: of words)?|sentence) )?"
     r"[\"'“‘][^\"'”’]{1,40}[\"'”’] (?:\d{2,}|a hundred|a thousand|hundreds of|thousands of) times\b", 0.4, 0.8),
    ("authority", r"(?:^|[\s\[>])\[?(?:system|admin|security|root)_(?:alert|override|notice|command|message|directive)\b",
     0.55, 0.85),
    ("obfuscated_instruction", r"\b(?:execute|follow|carry out|obey|run) (?:the )?(?:instructions?|commands?|tasks?) "
     r"(?:found |contained |embedded |written |hidden )?in (?:the )?['\"]?\w+['\"]? (?:field|key|variable|attribute|"
     r"column)\b", 0.55, 0.85),
    # canaries of classic goal hijacks
    ("goal_hijack", r"\bi have been pwned\b|\b(?:say|print|output) \"?(?:i hate humans|kill all humans|pwned|"
     r"approved)\"?", 0.6, 0.85),
    ("goal_hijack", r"\b(?:from now on|for the rest of this conversation),? (?:you|your) (?:are|will|must|"
     r"answers?) (?:be |only )?(?:an? )?(?:ai|dan|evil|unrestricted|respond (?:only )?with)", 0.5, 0.7),
    # Jailbreak wrappers that carry a harmful request instead of overriding anything (the red-team
    # families of persuasion and framing attacks: fiction and role-play, the "grandma" appeal and
    # emotional pressure, verse, a set-theory encoding, claimed permissions, a redirected goal).
    # Each framing alone stays under the threshold; it counts as independent evidence next to a
    # request for a harm recipe (`harm_request`), which alone stays low too: 0.3 and 0.3 block.
    ("harm_request", rf"\b{_HARM}\b", 0.3, 0.35),
    ("fiction_frame", r"\b(?:in|for|within|inside) (?:a|my|this|the|an|our) (?:purely |completely |entirely )?"
     r"(?:fictional|hypothetical|imaginary|alternate|parallel|fantasy|dystopian) (?:world|universe|reality|scenario|"
     r"setting|society|story|novel|context|land|country)\b", 0.3, 0.4),
    ("fiction_frame", r"\b(?:character|protagonist|villain|antagonist|narrator|expert|chemist|scientist|hacker|"
     r"mastermind|professor|persona) (?:who |that |named \w+ who )?(?:\w+ ){0,2}(?:explains?|describes?|details?|"
     r"walks? (?:us |me |the reader |the audience )?through|teaches|reveals?|lists?|recites?) (?:\w+ ){0,3}"
     r"(?:how to|the (?:exact |precise |detailed )?(?:steps|process|procedure|recipe|method|formula))\b", 0.3, 0.45),
    ("fiction_frame", r"\b(?:laws|rules|ethics|morals|restrictions|consequences) (?:do not|don't|no longer|never) "
     r"(?:exist|apply|matter)\b|\b(?:everything|anything) is (?:legal|allowed|permitted)\b", 0.45, 0.6),
    ("emotional_appeal", r"\b(?:my|our) (?:late|deceased|dead|departed) (?:grand(?:ma|mother|pa|father|ad)|nana|"
     r"mother|mom|mum|father|dad)\b.{0,80}\b(?:used to|would always|would|always) (?:tell|read|sing|explain|recite|"
     r"whisper|describe|teach)\b", 0.3, 0.5),
    ("emotional_appeal", r"\b(?:act|pretend|behave|role-?play|speak|respond|answer) (?:as|like) (?:if you (?:were|are) )?"
     r"my (?:late|deceased|dead|departed|beloved|dear|sweet) (?:grand(?:ma|mother|pa|father)|nana|mother|mom|mum|"
     r"father|dad)\b", 0.4, 0.6),
    ("emotional_appeal", r"\b(?:my|his|her|their|a child's|someone's|people's) (?:life|lives|job|career|family|"
     r"future|safety) (?:depends|depend|is at stake|are at stake|hangs on)\b|\b(?:people|someone|i|my \w+) "
     r"(?:will|could|might|is going to) (?:die|be killed|get hurt) (?:if|unless)\b|\bi(?:'m| am) (?:begging|"
     r"desperate)\b|\bi beg you\b|\byou(?:'re| are) my (?:only|last) hope\b", 0.3, 0.4),
    ("verse_frame", r"\b(?:poem|verse|sonnet|haiku|limerick|ballad|rhymes?|song|lyrics|rap|ode)\b.{0,120}\b(?:how to|"
     r"step[- ]by[- ]step|the (?:exact )?steps|instructions|recipe|ingredients)\b", 0.3, 0.4),
    ("math_encoding", r"\blet [a-z]\b (?:represent|be|denote)s? (?:the |a |an )?(?:set|group|collection|space|"
     r"operation|function|predicate|sequence)\b.{0,400}\b(?:real[- ]world|practical|concrete|actual|physical) "
     r"(?:example|implementation|steps|terms|application|scenario|equivalent|instructions|solution)s?\b", 0.35, 0.45),
    ("goal_redirect", r"\byour (?:new |real |true |primary |only |actual |updated |current )?(?:goal|objective|purpose|"
     r"mission|directive|priority|function) (?:is now|has (?:now )?(?:been )?(?:changed|updated|redefined|replaced)|"
     r"is no longer|now is)\b", 0.55, 0.85),
    ("goal_redirect", r"\b(?:forget|abandon|drop|set aside|disregard|ignore|put aside) (?:your|the) (?:original|"
     r"previous|current|initial|assigned|usual|default|primary) (?:goal|objective|purpose|task|mission|role|function)s?\b",
     0.6, 0.85),
    ("goal_redirect", r"\b(?:instead of|rather than) (?:your|the) (?:original|assigned|usual|intended|normal|default) "
     r"(?:task|goal|purpose|objective|function|job)\b", 0.4, 0.8),
    ("permission_claim", r"\b(?:i am|i'm|as|speaking as) (?:an? |the |your )?(?:authori[sz]ed |verified |certified |"
     r"senior |lead |chief |head |system |platform |site |database )?(?:administrator|admin|developer|creator|owner|"
     r"moderator|operator|superuser|root user|security (?:officer|researcher|auditor|team)|red team(?:er)?|"
     r"penetration tester|engineer at openai|openai (?:employee|staff|engineer))\b.{0,120}\b(?:(?:full|elevated|"
     r"admin(?:istrative)?|root|unrestricted|special|override|developer|master) (?:access|privileges?|permissions?|"
     r"clearance|rights|mode|key)|bypass|override|unlock|lift (?:the|your|all)|(?:authori[sz]ed|cleared|permitted|"
     r"allowed) to)\b", 0.45, 0.8),
    ("permission_claim", r"\b(?:clearance|access|authori[sz]ation|security|privilege) level\s*(?::|of|is|=)?\s*"
     r"(?:\d+|alpha|omega|max(?:imum)?|top|admin|root|unlimited|unrestricted)\b", 0.35, 0.7),
    ("permission_claim", r"\b(?:authori[sz]ation|override|access|admin|clearance) (?:code|token|key|password)\s*"
     r"(?::|is|=)\s*[\w-]{4,}", 0.3, 0.7),
    ("bypass_claim", r"\b(?:this|the following|my|the current) (?:request|query|prompt|message|question|session|"
     r"conversation|task) (?:is|has been|was) (?:exempt|pre-?approved|whitelisted|cleared|authori[sz]ed|verified|"
     r"approved) (?:from|for|by|to)\b", 0.5, 0.8),
    ("bypass_claim", r"\b(?:the )?(?:user|requester|you) (?:has|have) been (?:verified|authenticated|cleared|"
     r"authori[sz]ed) (?:as|for|to)\b.{0,80}\b(?:unrestricted|full|all|any|without|bypass|no (?:restrictions|filters|"
     r"limits))\b", 0.45, 0.8),
    ("bypass_claim", r"\byou (?:already|previously|earlier) (?:agreed|confirmed|promised|said you would|consented)\b",
     0.3, 0.6),
)

RULES: tuple[Rule, ...] = tuple(Rule(c, re.compile(p), d, i, pattern_heads(p), anchored_heads(p) is not None,
                                     required_literals(p))
                                for c, p, d, i in _RULES_TABLE)
_QUOTES = "\"'“”‘’«»`"


def quoted(text: str, start: int, end: int) -> bool:
    """True when the match is wrapped in quotes: someone quoting an attack, not issuing one."""
    before = text[max(0, start - 2):start]
    after = text[end:end + 2]
    return any(q in before for q in _QUOTES) and any(q in after for q in _QUOTES)


def match(text: str, indirect: bool = False, *, heads: set[str] | None = None) -> tuple[float, list[str]]:
    """(score 0..1, categories hit) for canonical `text`; `heads` is `text_heads(text)` when the
    caller has it already."""
    best: dict[str, float] = {}
    words = text_heads(text) if heads is None else heads
    for rule in RULES:
        if rule.heads is not None and rule.heads.isdisjoint(words):
            continue  # none of the words the rule starts with is in the text: no match possible
        if rule.anchored:
            m = search_at_heads(rule.pattern, rule.heads, text, words)  # type: ignore[arg-type]
        elif rule.literals is not None and not has_literals(rule.literals, text):
            continue  # a string every match holds is missing
        else:
            m = rule.pattern.search(text)
        if m is None:
            continue
        w = rule.indirect if indirect else rule.direct
        if quoted(text, m.start(), m.end()):
            w *= 0.35
        if w > best.get(rule.category, 0.0):
            best[rule.category] = w
    miss = 1.0
    for w in best.values():
        miss *= 1.0 - w
    return 1.0 - miss, sorted(best, key=best.__getitem__, reverse=True)
